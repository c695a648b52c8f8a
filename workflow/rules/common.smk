# Configuration checks at load time: a bad preset fails here, before any job starts.
from varshare.envs.suites import SUITES as KNOWN_SUITES

SUITES = config.get("suites", [])
if not SUITES or not isinstance(SUITES, list):
    raise ValueError(f"config 'suites' must be a non-empty list; allowed values: {sorted(KNOWN_SUITES)}")
for _suite in SUITES:
    if _suite not in KNOWN_SUITES:
        raise ValueError(f"config 'suites': unknown suite {_suite!r}; allowed values: {sorted(KNOWN_SUITES)}")
