using Sculpt.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sculpt.Training;

public static class Losses
{
    /// <summary>
    /// Binary: BCE-with-logits + soft Dice on the sigmoid. Multi-class: cross-entropy + mean soft Dice over
    /// foreground classes. Soft Dice is computed over the whole batch (stable when a case has no foreground).
    /// </summary>
    public static Tensor DiceCe(Tensor logits, Tensor labels)
    {
        // the smoothing term of the soft Dice is 1 (HeldScalars.One); explicit add(…, One) instead of a + b, and
        // neg().add(One) instead of 1 - x, because TorchSharp's operators make Scalars nobody holds (see HeldScalars)
        var one = HeldScalars.One;
        if (logits.shape[1] == 1)
        {
            var target = labels.unsqueeze(1).to_type(ScalarType.Float32);
            var bce = F.binary_cross_entropy_with_logits(logits, target);
            var p = logits.sigmoid();
            var dice = (p * target).sum().mul(HeldScalars.Two).add(one, one) / p.sum().add(target.sum(), one).add(one, one);
            return bce.add(dice.neg().add(one, one), one);
        }
        var ce = F.cross_entropy(logits, labels);
        var prob = logits.softmax(1);
        var onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to_type(ScalarType.Float32);
        var dims = new long[] { 0, 2, 3 };
        var inter = (prob * onehot).sum(dims);
        var denom = prob.sum(dims).add(onehot.sum(dims), one);
        var perClass = inter.mul(HeldScalars.Two).add(one, one) / denom.add(one, one);
        return ce.add(perClass.narrow(0, 1, logits.shape[1] - 1).mean().neg().add(one, one), one);
    }
}
