"""The hardware and software of an MLPerf result, from its system description (systems/<system>.json)."""

from __future__ import annotations

import re
from collections.abc import Callable

from trainmark.spec import models


def _bytes(text: str) -> int | None:
    """'2 TB', '180 GB', '64GB' as bytes (decimal units, the way the descriptions write them)."""
    found = re.fullmatch(r"\s*([\d.]+)\s*([KMGTP])i?B\s*", text or "")
    if not found:
        return None
    return int(float(found.group(1)) * 1000 ** "KMGTP".index(found.group(2)) * 1000)


def system_block(
    system: dict | None, platform: str | None, issue: Callable[[str, str], None]
) -> tuple[models.System, int]:
    """(system, accelerators) from the system description, or as much as the platform name says."""
    if system is None:
        issue(
            "incomplete-source",
            f"no system description (system.json or --system): the hardware is known only as "
            f"the platform name {platform or 'not logged'!r}, one device on one node",
        )
        device = models.Device(
            index=0,
            node=0,
            kind="other_accelerator",
            vendor="not in MLPerf logs",
            model=platform or "not in MLPerf logs",
        )
        return models.System(node_count=1, hosts=[models.Host(node=0)], devices=[device]), 1

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
    cpu_model = text("host_processor_model_name")  # the order of these reads is the order of their issues
    sockets = count("host_processors_per_node")
    cores = count("host_processor_core_count")
    host = {
        "cpu_model": cpu_model,
        "cpu_sockets": sockets,
        "cpu_cores": cores * sockets if cores and sockets else None,
        "memory_bytes": _bytes(text("host_memory_capacity") or "") or None,
        "accelerators": per_node,
    }
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
    device = {
        "kind": kind,
        "vendor": vendor,
        "model": model,
        "memory_bytes": _bytes(text("accelerator_memory_capacity") or "") or None,
        "memory_type": text("accelerator_memory_configuration") or None,
    }
    devices = [
        models.Device(index=node * per_node + local, node=node, local_index=local, **device)
        for node in range(nodes)
        for local in range(per_node)
    ]
    if not devices:
        issue("incomplete-source", "accelerators_per_node is missing: the accelerators are not described")
        devices = [models.Device(index=0, node=0, **device)]
    system_name = text("system_name")
    links = {
        "intra_node": text("accelerator_interconnect") or None,
        "inter_node": text("host_networking") or None,
        "topology": text("host_networking_topology") or None,
    }
    block = models.System(
        system_name=system_name,
        node_count=nodes,
        hosts=[models.Host(node=node, **host) for node in range(nodes)],
        devices=devices,
        interconnect=models.Interconnect(**links) if any(links.values()) else None,
    )
    return block, len(devices)


def software_block(system: dict | None, issue: Callable[[str, str], None]) -> models.Software:
    """The software block from the system description (framework, OS, CUDA, driver)."""
    framework = (system or {}).get("framework") if isinstance((system or {}).get("framework"), str) else None
    if framework and framework.strip():
        name, _, version = framework.strip().rpartition(" ")
        block = models.Software(
            framework=models.NamedVersion(name=name or framework, version=version if name else framework)
        )
    else:
        issue("incomplete-source", "the framework is not described; recorded as unknown")
        block = models.Software(framework=models.NamedVersion(name="unknown", version="unknown"))
    if system:
        if isinstance(system.get("operating_system"), str) and system["operating_system"].strip():
            block.os_name = system["operating_system"]
        stack = system.get("other_software_stack")
        entries = stack if isinstance(stack, list) else [stack] if isinstance(stack, dict) else []
        for entry in entries:
            if isinstance(entry, dict):
                if entry.get("cuda_version"):
                    block.cuda_version = str(entry["cuda_version"])
                if entry.get("cuda_driver_version"):
                    block.accelerator_driver_version = str(entry["cuda_driver_version"])
    return block


def cooling_block(system: dict | None) -> dict[str, str]:
    """Cooling as the system description declares it: the `cooling_method` and `cooling_source` of
    models.Environment, or nothing."""
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
