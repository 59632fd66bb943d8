from tests.aws.conftest import moto_cluster

__all__ = ["moto_cluster"]
