"""Helpers for the SageMaker multi-model endpoint notebooks: logic lives here, notebooks explain."""

__version__ = "0.1.0"
