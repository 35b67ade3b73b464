"""Loaded by every Python process of an emulated pipeline task (the emulator puts this
folder first on PYTHONPATH): kfp maps a `gs://B/P` artifact to the local path `/gcs/B/P`,
Vertex AI's Cloud Storage FUSE mount. Here that mount is the emulator's Cloud Storage
folder, named by DEPLOYTEST_GCS_MOUNT; the prefix is set when kfp's artifact module is
first imported (not before: most task processes never import kfp)."""

import importlib.abc
import os
import sys

_MODULE = "kfp.dsl.types.artifact_types"
_MOUNT = os.environ.get("DEPLOYTEST_GCS_MOUNT", "")


class _SetMountPrefix(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)
        try:
            import importlib.util

            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):
            original(module)
            module._GCS_LOCAL_MOUNT_PREFIX = _MOUNT

        loader.exec_module = exec_module
        return spec


if _MOUNT and _MODULE not in sys.modules:
    sys.meta_path.insert(0, _SetMountPrefix())
