"""The base of every config and spec model: unknown fields are errors, values are frozen.

Its own module so that an audit's config sections and fine-tuner specs can be imported
(e.g. by a fine-tuning process) without the engine: pydantic only.
"""

import pydantic


class Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
