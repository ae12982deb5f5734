using Sculpt.Runtime;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Sculpt.Tests;

/// <summary>
/// The convolutions training runs (<see cref="TorchRuntime.Conv2d"/>, <see cref="TorchRuntime.ConvTranspose2d"/>: oneDNN
/// where the start-up probe found it exact, in channels-last layout) give the analytic gradients, computed in float64
/// (libtorch's native kernels; oneDNN has no float64 convolution): for y = conv2d(x, w), ∂L/∂x = conv_transpose2d(∂L/∂y, w)
/// and ∂L/∂w = Σ_b x ⋆ ∂L/∂y (a conv2d over the batch axis). Shapes include the narrow widths of pruned networks.
/// </summary>
public class GradientTests
{
    static GradientTests() => TorchRuntime.Initialize();

    private static Tensor Hold(Tensor t) => t;

    private static void AssertClose(Tensor got, Tensor expected, string what)
    {
        double scale = 1 + expected.abs().max().item<double>();
        double error = (got.to_type(ScalarType.Float64) - expected).abs().max().item<double>();
        Assert.True(error <= 1e-4 * scale, $"{what} differs by {error:g3} (scale {scale:g3})");
    }

    [Theory]
    [InlineData(4, 4, 4, 32, 1)]
    [InlineData(8, 8, 8, 56, 1)]
    [InlineData(32, 3, 4, 32, 1)]
    [InlineData(1, 4, 2, 16, 1)]
    [InlineData(16, 16, 8, 28, 1)]
    [InlineData(12, 24, 2, 20, 1)]
    [InlineData(1, 5, 2, 20, 2)]
    [InlineData(6, 7, 2, 21, 2)]
    public void ConvolutionGradientsAreExact(int cin, int cout, int batch, int hw, int stride)
    {
        using var scope = NewDisposeScope();
        for (int trial = 0; trial < 3; trial++)
        {
            var x0 = randn(batch, cin, hw, hw);
            var w0 = randn(cout, cin, 3, 3);
            int outSize = (hw + 2 - 3) / stride + 1;
            var gy = randn(batch, cout, outSize, outSize);
            var x = x0.clone().requires_grad_(true);
            var w = w0.clone().requires_grad_(true);
            long[] s = [stride, stride], p = [1, 1];
            var y = TorchRuntime.Conv2d(x, w, null, s, p, [1, 1], 1, Hold);
            (y * gy).sum().backward();
            var (x64, w64, g64) = (x0.to_type(ScalarType.Float64), w0.to_type(ScalarType.Float64), gy.to_type(ScalarType.Float64));
            // the strided transpose reaches back to the input's size through output padding
            long extra = hw - ((outSize - 1) * stride - 2 + 3);
            AssertClose(y.detach(), F.conv2d(x64, w64, strides: s, padding: p), "output");
            AssertClose(x.grad!, F.conv_transpose2d(g64, w64, strides: s, padding: p, output_padding: [extra, extra]), "input gradient");
            // weight gradient: correlate each input channel with each output-gradient channel over the batch
            var gw = F.conv2d(x64.transpose(0, 1), g64.transpose(0, 1), padding: p, dilation: s).transpose(0, 1);
            AssertClose(w.grad!, gw.narrow(2, 0, 3).narrow(3, 0, 3), "weight gradient");
        }
    }

    [Theory]
    [InlineData(5, 3, 14, 3, 1)]
    [InlineData(24, 12, 12, 3, 1)]
    [InlineData(3, 7, 10, 3, 1)]
    [InlineData(5, 3, 14, 2, 2)]
    public void TransposedConvolutionsAndTheirGradientsAreExact(int cin, int cout, int hw, int kernel, int stride)
    {
        using var scope = NewDisposeScope();
        int pad = kernel == 3 ? 1 : 0, outSize = (hw - 1) * stride - 2 * pad + kernel;
        var x0 = randn(2, cin, hw, hw);
        var w0 = randn(cin, cout, kernel, kernel);
        var gy = randn(2, cout, outSize, outSize);
        var x = x0.clone().requires_grad_(true);
        var w = w0.clone().requires_grad_(true);
        long[] s = [stride, stride], p = [pad, pad];
        var y = TorchRuntime.ConvTranspose2d(x, w, null, s, p, [0, 0], [1, 1], 1, Hold);
        (y * gy).sum().backward();
        var x64 = x0.to_type(ScalarType.Float64).requires_grad_(true);
        var w64 = w0.to_type(ScalarType.Float64).requires_grad_(true);
        var y64 = F.conv_transpose2d(x64, w64, strides: s, padding: p);
        (y64 * gy.to_type(ScalarType.Float64)).sum().backward();
        AssertClose(y.detach(), y64.detach(), "output");
        AssertClose(x.grad!, x64.grad!, "input gradient");
        AssertClose(w.grad!, w64.grad!, "weight gradient");
    }
}
