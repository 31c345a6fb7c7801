from tests.sandbox.conftest import dataset_file, dataset_template, receiver, sandbox

__all__ = ["dataset_file", "dataset_template", "receiver", "sandbox"]
