"""The hardware and software of an MLPerf result, from its system description (systems/<system>.json)."""

from __future__ import annotations

import re
from collections.abc import Callable


def _bytes(text: str) -> int | None:
    """'2 TB', '180 GB', '64GB' as bytes (decimal units, the way the descriptions write them)."""
    found = re.fullmatch(r"\s*([\d.]+)\s*([KMGTP])i?B\s*", text or "")
    if not found:
        return None
    return int(float(found.group(1)) * 1000 ** "KMGTP".index(found.group(2)) * 1000)


def system_block(system: dict | None, platform: str | None, issue: Callable[[str, str], None]) -> tuple[dict, int]:
    """(system, accelerators) from the system description, or as much as the platform name says."""
    if system is None:
        issue(
            "incomplete-source",
            f"no system description (system.json or --system): the hardware is known only as "
            f"the platform name {platform or 'not logged'!r}, one device on one node",
        )
        device = {
            "index": 0,
            "node": 0,
            "kind": "other_accelerator",
            "vendor": "not in MLPerf logs",
            "model": platform or "not in MLPerf logs",
        }
        return {"node_count": 1, "hosts": [{"node": 0}], "devices": [device]}, 1

    def text(key):
        value = system.get(key)
        if isinstance(value, str) and not value.strip():
            issue("placeholder-value", f"system description field {key!r} is empty")
            return None
        return value if isinstance(value, str) else None

    def count(key):
        value = text(key)
        return int(value) if value and value.strip().isdigit() else None

    nodes = count("number_of_nodes") or 1
    if count("number_of_nodes") is None:
        issue("assumed-value", "number_of_nodes is missing or not a number: 1 node is assumed")
    per_node = count("accelerators_per_node") or 0
    host = {
        key: value
        for key, value in {
            "cpu_model": text("host_processor_model_name"),
            "cpu_sockets": count("host_processors_per_node"),
            "accelerators": per_node,
        }.items()
        if value is not None
    }
    cores = count("host_processor_core_count")
    if cores and host.get("cpu_sockets"):
        host["cpu_cores"] = cores * host["cpu_sockets"]
    memory = _bytes(text("host_memory_capacity") or "")
    if memory:
        host["memory_bytes"] = memory
    model = text("accelerator_model_name") or "not in the system description"
    lowered = model.lower()
    kind = (
        "gpu"
        if "gpu" in lowered or "nvidia" in lowered
        else "tpu"
        if "tpu" in lowered
        else "hpu"
        if "gaudi" in lowered
        else "other_accelerator"
    )
    vendor = (
        "NVIDIA"
        if kind == "gpu"
        else "Google"
        if kind == "tpu"
        else "Intel Habana"
        if kind == "hpu"
        else text("submitter") or "not in the system description"
    )
    device = {"kind": kind, "vendor": vendor, "model": model}
    device_memory = _bytes(text("accelerator_memory_capacity") or "")
    if device_memory:
        device["memory_bytes"] = device_memory
    if text("accelerator_memory_configuration"):
        device["memory_type"] = text("accelerator_memory_configuration")
    devices = [
        {"index": node * per_node + local, "node": node, "local_index": local, **device}
        for node in range(nodes)
        for local in range(per_node)
    ]
    if not devices:
        issue("incomplete-source", "accelerators_per_node is missing: the accelerators are not described")
        devices = [{"index": 0, "node": 0, **device}]
    block = {
        "system_name": text("system_name"),
        "node_count": nodes,
        "hosts": [{"node": node, **host} for node in range(nodes)],
        "devices": devices,
    }
    interconnect = {
        "intra_node": text("accelerator_interconnect"),
        "inter_node": text("host_networking"),
        "topology": text("host_networking_topology"),
    }
    interconnect = {key: value for key, value in interconnect.items() if value}
    if interconnect:
        block["interconnect"] = interconnect
    return {key: value for key, value in block.items() if value is not None}, len(devices)


def software_block(system: dict | None, issue: Callable[[str, str], None]) -> dict:
    """The software block from the system description (framework, OS, CUDA, driver)."""
    framework = (system or {}).get("framework") if isinstance((system or {}).get("framework"), str) else None
    if framework and framework.strip():
        name, _, version = framework.strip().rpartition(" ")
        block = {"framework": {"name": name or framework, "version": version if name else framework}}
    else:
        issue("incomplete-source", "the framework is not described; recorded as unknown")
        block = {"framework": {"name": "unknown", "version": "unknown"}}
    if system:
        if isinstance(system.get("operating_system"), str) and system["operating_system"].strip():
            block["os_name"] = system["operating_system"]
        stack = system.get("other_software_stack")
        entries = stack if isinstance(stack, list) else [stack] if isinstance(stack, dict) else []
        for entry in entries:
            if isinstance(entry, dict):
                if entry.get("cuda_version"):
                    block["cuda_version"] = str(entry["cuda_version"])
                if entry.get("cuda_driver_version"):
                    block["accelerator_driver_version"] = str(entry["cuda_driver_version"])
    return block


def cooling_block(system: dict | None) -> dict:
    """Cooling as the system description declares it."""
    text = (system or {}).get("cooling")
    if not isinstance(text, str) or not text.strip():
        return {}
    lowered = text.lower()
    method = (
        "immersion"
        if "immersion" in lowered
        else "direct_liquid"
        if re.search(r"water|liquid", lowered)
        else "air"
        if "air" in lowered
        else None
    )
    return {"cooling_method": method, "cooling_source": f"the system description says {text!r}"} if method else {}
