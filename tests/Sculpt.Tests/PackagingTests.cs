using System.Diagnostics;
using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Sculpt.Data;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// Sculpt.Inference as an application outside this repository gets it: packed with <c>dotnet pack</c>, restored
/// from a folder feed by the sample app (which imports none of the repository's build settings), and run.
/// </summary>
[Collection("serial")]
public class PackagingTests
{

    /// <summary>The configuration these tests were built in (bin/Release/… or bin/Debug/…).</summary>
    private static string Configuration => AppContext.BaseDirectory.Contains("/bin/Debug/") ? "Debug" : "Release";

    private static string Run(string workingDir, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // the nested build must not inherit the test host's MSBuild node or its output settings
        psi.Environment["MSBUILDNOINPROCNODE"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(5)), $"dotnet {string.Join(' ', args)} did not finish in 5 minutes");
        Assert.True(p.ExitCode == 0, $"dotnet {string.Join(' ', args)} failed ({p.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
        return stdout.Result;
    }

    private static string GlobalPackages() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>Packs Sculpt.Inference from this build; returns the folder feed and the package file.</summary>
    private static (string Feed, string Package) Pack(string dir)
    {
        var feed = Path.Combine(dir, "feed");
        Run(TestFiles.RepoRoot(), "pack", Path.Combine("src", "Sculpt.Inference", "Sculpt.Inference.csproj"), "-c", Configuration, "--no-build", "-o", feed, "-v", "q");
        return (feed, Directory.GetFiles(feed, "Sculpt.Inference.*.nupkg").Single());
    }

    [Fact]
    public void TheSampleAppBuiltAgainstThePackedPackagePrintsTheEjectionFractionSculptSegmentReports()
    {
        var dir = TestFiles.TempDir();
        var (feed, package) = Pack(dir);
        var sample = Path.Combine(dir, "samples");
        CopyTree(Path.Combine(TestFiles.RepoRoot(), "samples"), sample);
        // packages restore into a folder of their own, so this run's package is used and not one cached earlier
        // under the same version; everything else comes from the local package cache (no network)
        var project = Path.Combine(sample, "EjectionFraction", "EjectionFraction.csproj");
        Run(sample, "build", project, "-c", "Release", "-v", "q", $"-p:RestoreSources={feed}",
            $"-p:RestorePackagesPath={Path.Combine(dir, "packages")}", $"-p:RestoreFallbackFolders={GlobalPackages()}");
        var app = Path.Combine(sample, "EjectionFraction", "bin", "Release", "net10.0");
        using (var zip = ZipFile.OpenRead(package))
        {
            using var packed = new MemoryStream();
            zip.GetEntry("lib/net10.0/Sculpt.Inference.dll")!.Open().CopyTo(packed);
            Assert.Equal(packed.ToArray(), File.ReadAllBytes(Path.Combine(app, "Sculpt.Inference.dll")));
        }
        // any RID: the application carries ONNX Runtime's native builds for the other platforms too (the package forces none)
        Assert.All(new[] { "linux-x64", "linux-arm64", "win-x64", "osx-arm64" }, rid => Assert.True(Directory.Exists(Path.Combine(app, "runtimes", rid)), rid));
        // no training stack reaches the application
        var deployed = Directory.GetFiles(app, "*", SearchOption.AllDirectories).Select(Path.GetFileName).ToList();
        Assert.DoesNotContain(deployed, f => Regex.IsMatch(f!, "torch|ScottPlot|Skia", RegexOptions.IgnoreCase));

        var data = Path.Combine(dir, "synth");
        SynthDataset.Write(data, new SynthOptions { Count = 3, Videos = 1, VideoFrames = 40, Seed = 11 });
        var loop = Path.Combine(data, "videos", "video_0000");
        var printed = Run(app, Path.Combine(app, "EjectionFraction.dll"), ArchiveFixture.Model, loop);

        // the same executor as the sample chose (the two agree to 1e-4 in the logits, not bit for bit)
        var engine = Regex.Match(printed, @"engine: (\w+)").Groups[1].Value;
        Assert.Contains(engine, new[] { "sculpt", "ort" });
        var r = TestFiles.Cli("segment", "--engine", engine, "--model", ArchiveFixture.Model, "--input", loop, "--out", Path.Combine(dir, "seg"), "--json");
        Assert.True(r.Code == 0, r.Err);
        var summary = JsonNode.Parse(r.Out)!;
        double ef = summary["ejection_fraction"]!.GetValue<double>();
        Assert.Contains($"frames: {summary["frames"]!.GetValue<int>()}\n", printed);
        Assert.Equal(ef, double.Parse(Regex.Match(printed, @"ejection fraction: (\S+)%").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        var beats = Regex.Matches(printed, @"beat \d+: ED frame (\d+), ES frame (\d+)").Select(m => (int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value)));
        Assert.Equal(summary["beats"]!.AsArray().Select(b => (b!["ed"]!.GetValue<int>(), b["es"]!.GetValue<int>())), beats);
        Assert.NotEmpty(beats);

        // Sculpt's engine chosen: the same study, and no native inference library in the process
        var managed = Run(app, Path.Combine(app, "EjectionFraction.dll"), ArchiveFixture.Model, loop, "sculpt");
        Assert.Contains("engine: sculpt\n", managed);
        Assert.Contains("ONNX Runtime loaded: no\n", managed);
        Assert.Contains("ONNX Runtime loaded: yes\n", Run(app, Path.Combine(app, "EjectionFraction.dll"), ArchiveFixture.Model, loop, "ort"));
        var cli = JsonNode.Parse(TestFiles.Cli("segment", "--engine", "sculpt", "--model", ArchiveFixture.Model, "--input", loop, "--out",
            Path.Combine(dir, "seg-sculpt"), "--json").Out)!;
        Assert.Equal(cli["ejection_fraction"]!.GetValue<double>(),
            double.Parse(Regex.Match(managed, @"ejection fraction: (\S+)%").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void ThePackageDependsOnOnnxRuntimeAndImageCodecsOnlyAndCarriesDocsVersionAndLicence()
    {
        var dir = TestFiles.TempDir();
        var (_, package) = Pack(dir);
        using var zip = ZipFile.OpenRead(package);
        XNamespace ns = "http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd";
        var nuspec = XDocument.Load(zip.GetEntry("Sculpt.Inference.nuspec")!.Open());
        var metadata = nuspec.Root!.Element(ns + "metadata")!;
        Assert.Equal(global::Sculpt.Common.SculptVersion.Text, metadata.Element(ns + "version")!.Value);
        Assert.Equal("MIT", metadata.Element(ns + "license")!.Value);
        Assert.Equal("README.md", metadata.Element(ns + "readme")!.Value);
        var dependencies = metadata.Descendants(ns + "dependency").Select(d => d.Attribute("id")!.Value).Order().ToList();
        Assert.Equal(["Microsoft.ML.OnnxRuntime", "StbImageSharp", "StbImageWriteSharp"], dependencies);
        var entries = zip.Entries.Select(e => e.FullName).ToHashSet();
        Assert.Contains("lib/net10.0/Sculpt.Inference.xml", entries);
        Assert.Contains("README.md", entries);
        // and the assembly itself references no training or plotting assembly
        using var dll = new MemoryStream();
        zip.GetEntry("lib/net10.0/Sculpt.Inference.dll")!.Open().CopyTo(dll);
        dll.Position = 0;
        using var pe = new PEReader(dll);
        var md = pe.GetMetadataReader();
        var references = md.AssemblyReferences.Select(h => md.GetString(md.GetAssemblyReference(h).Name)).ToList();
        Assert.Contains("Microsoft.ML.OnnxRuntime", references);
        Assert.DoesNotContain(references, r => r.StartsWith("TorchSharp") || r.StartsWith("ScottPlot") || r == "Sculpt");
    }

    [Fact]
    public void TheSampleReferencesTheOneVersion()
    {
        var csproj = XDocument.Load(Path.Combine(TestFiles.RepoRoot(), "samples", "EjectionFraction", "EjectionFraction.csproj"));
        var reference = csproj.Descendants("PackageReference").Single(e => e.Attribute("Include")!.Value == "Sculpt.Inference");
        Assert.Equal(global::Sculpt.Common.SculptVersion.Text, reference.Attribute("Version")!.Value);
    }

    private static void CopyTree(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(from, file);
            if (rel.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj")) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, rel))!);
            File.Copy(file, Path.Combine(to, rel));
        }
    }
}
