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
        const double eps = 1.0;
        if (logits.shape[1] == 1)
        {
            var target = labels.unsqueeze(1).to_type(ScalarType.Float32);
            var bce = F.binary_cross_entropy_with_logits(logits, target);
            var p = logits.sigmoid();
            var dice = (2 * (p * target).sum() + eps) / (p.sum() + target.sum() + eps);
            return bce + (1 - dice);
        }
        var ce = F.cross_entropy(logits, labels);
        var prob = logits.softmax(1);
        var onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to_type(ScalarType.Float32);
        var dims = new long[] { 0, 2, 3 };
        var inter = (prob * onehot).sum(dims);
        var denom = prob.sum(dims) + onehot.sum(dims);
        var perClass = (2 * inter + eps) / (denom + eps);
        return ce + (1 - perClass.narrow(0, 1, logits.shape[1] - 1).mean());
    }
}
