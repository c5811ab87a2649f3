"""The model families; importing this package registers every model once."""

import genlab.families.classical.gmm  # noqa: F401
import genlab.families.vae.vae  # noqa: F401
