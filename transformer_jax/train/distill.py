"""Knowledge distillation's loss (Hinton et al. 2015; DistilBERT): a student matches a
frozen teacher's softened distribution and the hard labels, per position p (a token of an
LM, an example of a classifier):

    loss_p = α · T² · KL(softmax(t_p / T) ‖ softmax(s_p / T)) + (1 − α) · CE(s_p, label_p)

with s, t the student's and teacher's logits. T² keeps the soft term's gradients on the
scale of the hard term's whatever T is. Like every loss in `train/losses.py` it returns
weighted sums, so gradient accumulation and data parallelism stay exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from transformer_jax.train import losses


def soft_kl(student_logits: jax.Array, teacher_logits: jax.Array, temperature: float
            ) -> jax.Array:
    """KL(teacher_T ‖ student_T) of each position, in nats (computed in float32).

    Args:
      student_logits, teacher_logits: [..., V] scores over the same V classes/tokens.
      temperature: T > 0; both distributions are softmax(logits / T).

    Returns:
      [...] float32 divergences.
    """
    student = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature, axis=-1)
    teacher = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / temperature, axis=-1)
    return optax.losses.kl_divergence_with_log_targets(student, teacher)


def distillation_loss(student_logits: jax.Array, teacher_logits: jax.Array,
                      targets: jax.Array, weights: jax.Array, *, alpha: float,
                      temperature: float) -> tuple[jax.Array, jax.Array]:
    """α·T²·KL(teacher_T ‖ student_T) + (1 − α)·cross entropy, as weighted sums.

    Args:
      student_logits, teacher_logits: [..., V] scores, e.g. [B, T, V] or [B, C].
      targets: [...] int hard labels.
      weights: [...] 0/1 (or real) weights; padding has weight 0.
      alpha: weight of the soft (teacher) term in [0, 1]; 0 is the plain hard-label loss.
      temperature: T > 0 of the soft term.

    Returns:
      (loss_sum, weight_sum): scalars, natural-log units.
    """
    hard = losses.token_losses(student_logits, targets)
    soft = soft_kl(student_logits, teacher_logits, temperature)
    per_position = alpha * temperature**2 * soft + (1.0 - alpha) * hard
    weights = weights.astype(jnp.float32)
    return jnp.sum(per_position * weights), jnp.sum(weights)
