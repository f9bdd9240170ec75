"""The conformance suite as a test class to subclass (pytest collects it as ``Test*``).

```python
from vidgen.testing import BackendConformance
from my_package import MyBackend

class TestMyBackend(BackendConformance):
    backend_factory = MyBackend
    backend_name = "mymodel"                      # the entry point name (registry check)
    conformance_options = {"num_frames": 4, "height": 16, "width": 16}
```

Every check is one test method; a check that does not apply (a task the backend
does not support, determinism of a non-deterministic backend) is skipped. The
backend is built once per class and shared by its tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from vidgen.errors import ConfigurationError
from vidgen.testing._suite import BackendTarget, ConformanceSuite

_SUITE_ATTR = "_vidgen_conformance_suite"


class BackendConformance:
    """Subclass as ``Test<Something>`` and set ``backend_factory`` (or ``backend_name``).

    ``backend_factory``: the backend class or any factory (or a ready instance);
    ``backend_options``: keyword options for it; ``backend_name``: the name it is
    registered under (enables the registry check; alone, the backend is loaded by
    that name); ``conformance_options``: further ``ConformanceOptions`` fields
    (``num_frames``, ``height``, ``width``, ``tasks``, ``prompt``, ``num_steps``,
    ``skip``, ...).
    """

    backend_factory: ClassVar[BackendTarget | None] = None
    backend_options: ClassVar[Mapping[str, Any]] = {}
    backend_name: ClassVar[str | None] = None
    conformance_options: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def conformance_suite(cls) -> ConformanceSuite:
        """This class's suite, built on first use and shared by its test methods."""
        suite = cls.__dict__.get(_SUITE_ATTR)
        if suite is None:
            target = cls.backend_factory if cls.backend_factory is not None else cls.backend_name
            if target is None:
                raise ConfigurationError(
                    f"{cls.__qualname__}: set backend_factory (or backend_name) to the backend "
                    "under test")
            options = dict(cls.conformance_options)
            if cls.backend_name is not None and not isinstance(target, str):
                options.setdefault("name", cls.backend_name)
            suite = ConformanceSuite(target, backend_options=dict(cls.backend_options),
                                     **options)
            setattr(cls, _SUITE_ATTR, suite)
        return suite

    def _conformance(self, check: str) -> None:
        type(self).conformance_suite().assert_check(check)

    # One test per check, in the suite's order.

    def test_protocol(self) -> None:
        self._conformance("protocol")

    def test_capabilities(self) -> None:
        self._conformance("capabilities")

    def test_capabilities_check(self) -> None:
        self._conformance("capabilities_check")

    def test_sample_text_to_video(self) -> None:
        self._conformance("sample[text_to_video]")

    def test_sample_image_to_video(self) -> None:
        self._conformance("sample[image_to_video]")

    def test_sample_edit(self) -> None:
        self._conformance("sample[edit]")

    def test_sample_inpaint(self) -> None:
        self._conformance("sample[inpaint]")

    def test_sample_stylize(self) -> None:
        self._conformance("sample[stylize]")

    def test_sample_cinemagraph(self) -> None:
        self._conformance("sample[cinemagraph]")

    def test_sample_extend(self) -> None:
        self._conformance("sample[extend]")

    def test_sample_loop(self) -> None:
        self._conformance("sample[loop]")

    def test_sample_storyboard(self) -> None:
        self._conformance("sample[storyboard]")

    def test_sample_defaults(self) -> None:
        self._conformance("sample_defaults")

    def test_progress(self) -> None:
        self._conformance("progress")

    def test_cancellation(self) -> None:
        self._conformance("cancellation")

    def test_determinism(self) -> None:
        self._conformance("determinism")

    def test_no_file_writes(self) -> None:
        self._conformance("no_file_writes")

    def test_no_key_access(self) -> None:
        self._conformance("no_key_access")

    def test_pipeline(self) -> None:
        self._conformance("pipeline")

    def test_pipeline_cancellation(self) -> None:
        self._conformance("pipeline_cancellation")

    def test_registry(self) -> None:
        self._conformance("registry")
