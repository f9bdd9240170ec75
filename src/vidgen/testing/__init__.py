"""Conformance suite for backend plugins: run it against your backend before you ship it.

Two ways to run the same checks (``CHECK_NAMES``):

```python
import vidgen.testing

report = vidgen.testing.check_backend(MyBackend, name="mymodel", num_frames=4,
                                      height=16, width=16)
print(report.summary())
report.raise_for_failures()            # ConformanceError (an AssertionError) if any failed
```

or under pytest, one test per check:

```python
from vidgen.testing import BackendConformance

class TestMyBackend(BackendConformance):
    backend_factory = MyBackend
    backend_name = "mymodel"
    conformance_options = {"num_frames": 4, "height": 16, "width": 16}
```

``ConformanceSuite(target, **options)`` is the object both use; its ``names()``
and ``assert_check(name)`` also fit ``pytest.mark.parametrize``. See
docs/plugins.md for what each check asks of a backend.
"""

from vidgen.testing._pytest import BackendConformance
from vidgen.testing._report import CheckResult, CheckStatus, ConformanceError, ConformanceReport
from vidgen.testing._suite import (
    CHECK_NAMES,
    BackendTarget,
    ConformanceCancelled,
    ConformanceOptions,
    ConformanceSuite,
    check_backend,
)
from vidgen.testing._watch import FileEvent, WatchResult, watch, watch_environ

__all__ = [
    "CHECK_NAMES",
    "BackendConformance",
    "BackendTarget",
    "CheckResult",
    "CheckStatus",
    "ConformanceCancelled",
    "ConformanceError",
    "ConformanceOptions",
    "ConformanceReport",
    "ConformanceSuite",
    "FileEvent",
    "WatchResult",
    "check_backend",
    "watch",
    "watch_environ",
]
