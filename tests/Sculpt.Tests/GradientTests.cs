using Sculpt.Runtime;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sculpt.Tests;

/// <summary>
/// Convolution gradients (with oneDNN off, see <see cref="TorchRuntime"/>) equal the analytic gradients: for
/// y = conv2d(x, w), ∂L/∂x = conv_transpose2d(∂L/∂y, w) and ∂L/∂w = Σ_b x ⋆ ∂L/∂y (computed as a conv2d
/// over the batch axis). Shapes include the narrow widths of pruned networks.
/// </summary>
public class GradientTests
{
    static GradientTests() => TorchRuntime.Initialize();

    [Theory]
    [InlineData(4, 4, 4, 32)]
    [InlineData(8, 8, 8, 56)]
    [InlineData(32, 3, 4, 32)]
    [InlineData(1, 4, 2, 16)]
    [InlineData(16, 16, 8, 28)]
    public void ConvolutionGradientsAreExact(int cin, int cout, int batch, int hw)
    {
        for (int trial = 0; trial < 3; trial++)
        {
            var x0 = randn(batch, cin, hw, hw);
            var w0 = randn(cout, cin, 3, 3);
            var gy = randn(batch, cout, hw, hw);
            var x = x0.clone().requires_grad_(true);
            var w = w0.clone().requires_grad_(true);
            var y = F.conv2d(x, w, padding: new long[] { 1, 1 });
            (y * gy).sum().backward();
            var gx = F.conv_transpose2d(gy, w0, padding: new long[] { 1, 1 });
            // weight gradient: correlate each input channel with each output-gradient channel over the batch
            var gw = F.conv2d(x0.transpose(0, 1), gy.transpose(0, 1), padding: new long[] { 1, 1 }).transpose(0, 1);
            double scale = 1 + gx.abs().max().item<float>();
            Assert.True((x.grad! - gx).abs().max().item<float>() <= 1e-4 * scale, "input gradient differs");
            Assert.True((w.grad! - gw).abs().max().item<float>() <= 1e-4 * (1 + gw.abs().max().item<float>()), "weight gradient differs");
        }
    }
}

