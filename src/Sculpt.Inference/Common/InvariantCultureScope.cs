using System.Globalization;

namespace Sculpt.Common;

/// <summary>
/// Runs a block under the invariant culture and restores the caller's: what Sculpt writes (CSV, JSON, HTML, ONNX
/// metadata) is read by programs, and a German host application must not get "0,5" in them. The CLI runs every
/// command in one; library entry points that format many numbers (the report) open their own.
/// </summary>
public readonly struct InvariantCultureScope : IDisposable
{
    private readonly CultureInfo _culture, _uiCulture;

    private InvariantCultureScope(CultureInfo culture, CultureInfo uiCulture) => (_culture, _uiCulture) = (culture, uiCulture);

    public static InvariantCultureScope Enter()
    {
        var scope = new InvariantCultureScope(CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);
        CultureInfo.CurrentCulture = CultureInfo.CurrentUICulture = CultureInfo.InvariantCulture;
        return scope;
    }

    public void Dispose() => (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture) = (_culture, _uiCulture);
}
