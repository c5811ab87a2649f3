"""The model families; importing this package registers every model once."""

import genlab.families.classical.bayesnet  # noqa: F401
import genlab.families.classical.copula  # noqa: F401
import genlab.families.classical.factor_analysis  # noqa: F401
import genlab.families.classical.gmm  # noqa: F401
import genlab.families.classical.hmm  # noqa: F401
import genlab.families.classical.kde  # noqa: F401
import genlab.families.flows.flows  # noqa: F401
import genlab.families.vae.vae  # noqa: F401
