using System.Text;
using System.Xml.Linq;
using Xunit;

namespace Sculpt.Tests;

/// <summary>One version number, from Directory.Build.props, in the assembly, `sculpt --version` and every ONNX export.</summary>
public class VersionTests
{
    private static string RepoVersion()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Directory.Build.props"))) dir = dir.Parent;
        Assert.NotNull(dir);
        var version = XDocument.Load(Path.Combine(dir!.FullName, "Directory.Build.props")).Descendants("Version").Single().Value;
        Assert.Matches(@"^\d+\.\d+\.\d+$", version);
        return version;
    }

    [Fact]
    public void TheCliTheAssemblyAndOnnxExportsCarryTheOneVersion()
    {
        var version = RepoVersion();
        Assert.Equal(version, global::Sculpt.Common.SculptVersion.Text);
        var r = TestFiles.Cli("--version");
        Assert.Equal((0, $"sculpt {version}"), (r.Code, r.Out.Trim()));

        var dir = TestFiles.TempDir();
        var model = TestFiles.UntrainedModel(dir, 16);
        var onnx = Path.Combine(dir, "m.onnx");
        var e = TestFiles.Cli("export", "--model", model, "--onnx", onnx);
        Assert.True(e.Code == 0, e.Err);
        // ModelProto: producer_name = 2 ("sculpt"), producer_version = 3, both length-delimited (wire type 2)
        var expected = new byte[] { 0x12, 6 }.Concat(Encoding.UTF8.GetBytes("sculpt"))
            .Concat(new byte[] { 0x1A, (byte)version.Length }).Concat(Encoding.UTF8.GetBytes(version)).ToArray();
        var bytes = File.ReadAllBytes(onnx);
        Assert.True(bytes.AsSpan().IndexOf(expected) >= 0, "producer_name/producer_version not found as written by the spec");
    }
}
