"""A stand-in for the open-source KFP v2 backend that follows its rules and contracts, as read
from its source (kubeflow/pipelines 2.17, paths cited where each rule is applied): the API
server's static checks (`rules.py`), and the driver, launcher and cache that execute a compiled
package task by task against a real S3-compatible object store (`engine.py`, `store.py`).
A test helper, not a product feature."""
