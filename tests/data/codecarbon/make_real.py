"""How real-cpu/ was made: three real CodeCarbon runs on the project's development machine, offline.

    cd tests/data/codecarbon/real-cpu && ../../../../.venv/bin/python ../make_real.py 2> codecarbon.log

Each run hashes for 4 s on the CPU under an OfflineEmissionsTracker (no network; France's grid).
That machine has no readable RAPL and no GPU, so CodeCarbon estimated the CPU from its load and a
TDP guess, and the RAM with its power model: its log (codecarbon.log) says which method it used.
"""

import hashlib
import time

from codecarbon import OfflineEmissionsTracker

for index in range(3):
    tracker = OfflineEmissionsTracker(
        country_iso_code="FRA",
        project_name="trainmark-fixture",
        experiment_id=f"cpu-hash-{index}",
        measure_power_secs=1,
        output_dir=".",
        output_file="emissions.csv",
        log_level="info",
        save_to_file=True,
    )
    tracker.start()
    digest, end = b"", time.time() + 4
    while time.time() < end:
        digest = hashlib.sha256(digest).digest()
    tracker.stop()
