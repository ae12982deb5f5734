using Sculpt.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sculpt.Training;

/// <summary>
/// Knowledge distillation from a (dense) teacher: an extra loss term, <see cref="TrainOptions.ExtraLoss"/>, that pulls
/// the student's output toward the teacher's on the same augmented batch.
/// </summary>
public static class Distillation
{
    public static readonly string[] Kinds = { "mse", "soft" };

    /// <summary>
    /// "mse": mean squared error between logits (matches the teacher's confidence too, whose logits can be tens in
    /// size). "soft": cross-entropy against the teacher's probabilities (sigmoid or softmax), bounded like the task
    /// loss, so the student matches where the teacher is unsure rather than how sure it is elsewhere.
    /// The teacher must be in eval mode and stay alive while the loss is used.
    /// </summary>
    /// <param name="studentNorm">Normalisation of the batches the loss receives.</param>
    /// <param name="teacherNorm">The teacher's own, if it differs (a teacher trained with other statistics).</param>
    public static Func<Tensor, Tensor, Tensor> Loss(GraphModule teacher, string kind, double weight, Normalization? studentNorm = null,
        Normalization? teacherNorm = null)
    {
        if (!Kinds.Contains(kind)) throw new ArgumentException($"unknown distillation loss '{kind}' ({string.Join(", ", Kinds)})");
        bool renormalise = studentNorm is not null && teacherNorm is not null
            && !(studentNorm.Mean.SequenceEqual(teacherNorm.Mean) && studentNorm.Std.SequenceEqual(teacherNorm.Std));
        return (x, logits) =>
        {
            Tensor t;
            using (no_grad()) t = teacher.forward(renormalise ? Batches.Normalize(Batches.Denormalize(x, studentNorm!), teacherNorm!) : x);
            using var w = weight.ToScalar(); // held until mul returns (see HeldScalars)
            Tensor term = kind == "mse" ? F.mse_loss(logits, t)
                : logits.shape[1] == 1 ? F.binary_cross_entropy_with_logits(logits, t.sigmoid())
                : (t.softmax(1) * logits.log_softmax(1)).sum(1).mean().neg();
            return term.mul(w);
        };
    }
}
