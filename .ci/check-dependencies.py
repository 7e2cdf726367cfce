#!/usr/bin/env python3
"""The layering the architecture promises, checked on `cargo metadata`:

- no dialect crate (crates/dialects/*) depends on another dialect crate;
- the layers below the dialects (core, store, scheduling, delivery,
  messaging, http)
  depend on no dialect, on the admin API, or on the server;
- the admin API depends on no dialect;
- no dialect crate calls a store function that changes an appointment, a
  calendar, a patient or a conversation: those writes go through the
  scheduling layer's commands (`crates/scheduling`).

Exits 1 and names every violation.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
metadata = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
)
members = {p["name"]: p for p in metadata["packages"]}
dialects = {n for n, p in members.items() if "/crates/dialects/" in p["manifest_path"]}
below = {
    "polyclinic-core", "polyclinic-store", "polyclinic-scheduling", "polyclinic-delivery", "polyclinic-messaging",
    "polyclinic-http",
}
top = {"polyclinic", "polyclinic-bench", "polyclinic-admin"}
if not dialects:
    sys.exit("check-dependencies: no crate under crates/dialects/")

violations = []
for name, package in members.items():
    # Normal and build dependencies; dev-dependencies may reach further for tests.
    deps = {d["name"] for d in package["dependencies"] if d.get("kind") in (None, "build")} & members.keys()
    if name in dialects:
        for d in sorted(deps & (dialects - {name})):
            violations.append(f"dialect {name} depends on dialect {d}")
        for d in sorted(deps & top):
            violations.append(f"dialect {name} depends on {d}, which sits above the dialects")
    if name in below:
        for d in sorted(deps & (dialects | top)):
            violations.append(f"{name} sits below the dialects but depends on {d}")
    if name == "polyclinic-admin":
        for d in sorted(deps & dialects):
            violations.append(f"the admin API depends on dialect {d}")

# Store functions only the scheduling layer may call.
SCHEDULING_ONLY = re.compile(
    r"\b(?:appointments::(?:create|cancel|reschedule|move_to|confirm|set_presence|request_opinion"
    r"|set_status|update_details)"
    r"|patients::(?:create|update)|related::create"
    r"|work_periods::replace|breaks::(?:create|move_to|remove)"
    r"|conversations::(?:create|add_message))\s*\("
)
for name in sorted(dialects):
    src = Path(members[name]["manifest_path"]).parent / "src"
    for path in sorted(src.rglob("*.rs")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SCHEDULING_ONLY.search(line.split("//")[0]):
                where = path.relative_to(ROOT)
                violations.append(f"{where}:{number}: dialect {name} writes through the store, not scheduling")

if violations:
    print("check-dependencies: the crate layering is broken:", *violations, sep="\n  ")
    sys.exit(1)
print(
    f"check-dependencies: {len(dialects)} dialect crates ({', '.join(sorted(dialects))}); layering holds,"
    " and no dialect writes appointments, calendars, patients or conversations past scheduling"
)
