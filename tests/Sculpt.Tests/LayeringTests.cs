using System.Reflection;
using System.Text.RegularExpressions;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// The layers of ../shared/ARCHITECTURE.md, enforced: each folder (one namespace) of src/Sculpt.Inference and
/// src/Sculpt names only the folders below it. A reference is a <c>using Sculpt.X</c>, a <c>Sculpt.X.</c>
/// qualifier, or a folder-qualified name of a type that folder really declares (<c>Training.Metrics</c>).
/// </summary>
public class LayeringTests
{
    /// <summary>What each folder may use. Sculpt.Inference holds Common … Deploy and cannot see the rest (no project reference).</summary>
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["Common"] = [],
        ["Graph"] = ["Common"],
        // in Sculpt.Inference: the model package, its weights and task metadata; in Sculpt: GraphModule (TorchSharp)
        ["Runtime"] = ["Common", "Graph"],
        ["Onnx"] = ["Common", "Graph", "Runtime"],
        ["Models"] = ["Graph"],
        // Sculpt's own executor: plans a graph with its weights
        ["Engine"] = ["Common", "Graph", "Runtime"],
        ["Clinical"] = ["Common"],
        // the synthetic generator records each loop's true EF with the clinical formula (one definition of EF);
        // a data set carries the normalisation of the task it was made for
        ["Data"] = ["Common", "Clinical", "Runtime"],
        ["Deploy"] = ["Common", "Graph", "Runtime", "Onnx", "Data", "Clinical", "Engine"],
        ["Import"] = ["Common", "Graph", "Runtime", "Onnx"],
        ["Training"] = ["Common", "Graph", "Runtime", "Models", "Data"],
        // a latency target is timed in ONNX Runtime on this machine (LatencyBudget)
        ["Pruning"] = ["Common", "Graph", "Runtime", "Models", "Data", "Training", "Deploy"],
        ["Report"] = ["Common", "Graph", "Runtime", "Onnx", "Models", "Data", "Clinical", "Deploy", "Engine", "Training", "Pruning", "Import"],
    };


    private static readonly string[] Projects = ["Sculpt.Inference", "Sculpt"];

    private static IEnumerable<(string Folder, string File)> Sources() =>
        Projects.SelectMany(p =>
        {
            var dir = Path.Combine(TestFiles.RepoRoot(), "src", p);
            return Directory.GetFiles(dir, "*.cs", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(dir, f))
                .Where(r => !r.StartsWith("bin/") && !r.StartsWith("obj/") && r.Contains('/'))
                .Select(r => (r.Split('/')[0], Path.Combine(dir, r)));
        });

    /// <summary>Type names per folder namespace, from both assemblies.</summary>
    private static Dictionary<string, HashSet<string>> TypesByFolder()
    {
        var map = new Dictionary<string, HashSet<string>>();
        foreach (var asm in new[] { typeof(Sculpt.Deploy.Segmenter).Assembly, typeof(Sculpt.Runtime.GraphModule).Assembly })
            foreach (var t in asm.GetTypes().Where(t => t.Namespace?.StartsWith("Sculpt.") == true && !t.IsNested))
            {
                var folder = t.Namespace!.Split('.')[1];
                if (!map.TryGetValue(folder, out var set)) map[folder] = set = new();
                set.Add(Regex.Replace(t.Name, "`.*", ""));
            }
        return map;
    }

    public static IEnumerable<string> References(string source, Dictionary<string, HashSet<string>> types)
    {
        var code = Regex.Replace(source, @"//.*", "");
        code = Regex.Replace(code, "\"(?:[^\"\\\\\\n]|\\\\.)*\"", "\"\"");
        foreach (Match m in Regex.Matches(code, @"\bSculpt\.(\w+)")) yield return m.Groups[1].Value;
        foreach (Match m in Regex.Matches(code, @"(?<![\w.])(\w+)\.([A-Z]\w*)"))
            if (types.TryGetValue(m.Groups[1].Value, out var declared) && declared.Contains(m.Groups[2].Value)) yield return m.Groups[1].Value;
    }

    [Fact]
    public void EveryFolderUsesOnlyTheLayersBelowIt()
    {
        var types = TypesByFolder();
        var violations = new List<string>();
        var folders = new HashSet<string>();
        foreach (var (folder, file) in Sources())
        {
            folders.Add(folder);
            Assert.True(Allowed.ContainsKey(folder), $"folder {folder} has no place in the layers (LayeringTests.Allowed)");
            foreach (var used in References(File.ReadAllText(file), types).Distinct())
                if (used != folder && Allowed.ContainsKey(used) && !Allowed[folder].Contains(used))
                    violations.Add($"{Path.GetRelativePath(TestFiles.RepoRoot(), file)}: {folder} uses {used}");
        }
        Assert.True(violations.Count == 0, string.Join("\n", violations));
        Assert.Superset(new HashSet<string> { "Common", "Graph", "Onnx", "Deploy", "Training", "Pruning" }, folders);
    }

    /// <summary>The graph IR and its operator definitions are pure C#: no TorchSharp and no ONNX Runtime.</summary>
    [Fact]
    public void TheGraphNamesNoRuntime()
    {
        var offenders = Sources().Where(s => s.Folder == "Graph")
            .SelectMany(s => File.ReadLines(s.File).Where(l => l.StartsWith("using ") && (l.Contains("TorchSharp") || l.Contains("OnnxRuntime")))
                .Select(l => $"{Path.GetFileName(s.File)}: {l}"))
            .ToList();
        Assert.Empty(offenders);
        Assert.Contains(Sources(), s => s.Folder == "Graph");
    }

    [Fact]
    public void TheCheckSeesQualifiedTypesButNotPropertiesOfTheSameName()
    {
        var types = TypesByFolder();
        Assert.Equal(["Training"], References("var p = Training.Metrics.Compute(a, b);", types));
        Assert.Equal(["Runtime"], References("using Sculpt.Runtime;", types));
        Assert.Empty(References("int n = t.Data.Length; var d = Data.Length; // Sculpt.Training", types));
    }

    [Fact]
    public void TheInferenceAssemblyReferencesNeitherTorchSharpNorPlottingNorTheTrainingLibrary()
    {
        var references = typeof(Sculpt.Deploy.Segmenter).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.DoesNotContain(references, r => r.StartsWith("TorchSharp") || r.StartsWith("ScottPlot") || r.StartsWith("SkiaSharp") || r == "Sculpt");
        Assert.Equal("Sculpt.Inference", typeof(Sculpt.Graph.NetworkGraph).Assembly.GetName().Name);
        Assert.Equal("Sculpt.Inference", typeof(Sculpt.Runtime.ModelPackage).Assembly.GetName().Name);
        Assert.Equal("Sculpt", typeof(Sculpt.Runtime.GraphModule).Assembly.GetName().Name);
    }
}
