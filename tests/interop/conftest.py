"""Where GN_DETECTION_REQUIRE_DETECTRON2=1 (CI, which installs detectron2's wheel), a comparison
with detectron2 that cannot run is a failure, not a skip."""
import os

import pytest

REQUIRED = os.environ.get("GN_DETECTION_REQUIRE_DETECTRON2") == "1"

if REQUIRED:
    import detectron2  # noqa: F401  (an ImportError here stops the run)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRED and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped, but GN_DETECTION_REQUIRE_DETECTRON2=1 requires it to run: {report.longrepr}"
