using TorchSharp;

namespace Sculpt.Runtime;

/// <summary>
/// TorchSharp Scalars that live as long as the process. A Scalar made on the fly (implicit conversion of a number,
/// or inside TorchSharp's own <c>a + b</c>, whose alpha is a fresh Scalar 1) belongs to no DisposeScope and may be
/// finalized by the GC while libtorch still reads it — CI failed with "Expected false to be true" from
/// <c>Scalar::toFloat</c> inside an optimizer step. Constants come from here; a value known only at run time is
/// made with <c>ToScalar()</c> into a <c>using</c> variable, which holds it until the call returns.
/// <c>ScalarLifetimeTests</c> reads the compiled IL and fails on any other way of making one.
/// </summary>
public static class HeldScalars
{
    public static readonly Scalar Zero = 0.0.ToScalar();
    public static readonly Scalar One = 1.0.ToScalar();
    public static readonly Scalar Two = 2.0.ToScalar();
    public static readonly Scalar MinusOne = (-1.0).ToScalar();
}
