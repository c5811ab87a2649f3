"""The model families; importing this package registers every model once."""

import genlab.families.autoregressive.charrnn  # noqa: F401
import genlab.families.autoregressive.gpt  # noqa: F401
import genlab.families.autoregressive.pixelcnn  # noqa: F401
import genlab.families.autoregressive.wavenet  # noqa: F401
import genlab.families.classical.arima  # noqa: F401
import genlab.families.classical.bayesnet  # noqa: F401
import genlab.families.classical.copula  # noqa: F401
import genlab.families.classical.factor_analysis  # noqa: F401
import genlab.families.classical.gmm  # noqa: F401
import genlab.families.classical.hmm  # noqa: F401
import genlab.families.classical.kde  # noqa: F401
import genlab.families.classical.ngram  # noqa: F401
import genlab.families.diffusion.diffusion  # noqa: F401
import genlab.families.ebm.ebm  # noqa: F401
import genlab.families.ebm.rbm  # noqa: F401
import genlab.families.flows.flows  # noqa: F401
import genlab.families.flows.glow  # noqa: F401
import genlab.families.gan.gan  # noqa: F401
import genlab.families.vae.vae  # noqa: F401
import genlab.families.vae.vqvae  # noqa: F401
