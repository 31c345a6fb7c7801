from tests.sandbox.conftest import receiver, sandbox

__all__ = ["receiver", "sandbox"]
