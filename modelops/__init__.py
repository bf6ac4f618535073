"""modelops: the core library behind the modelops-flows Prefect flows.

Nothing heavy is imported here: ``import modelops`` costs milliseconds, and the public API is
loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
