using System.Globalization;
using System.Text.Json.Nodes;
using Sculpt.Data;
using Xunit;

namespace Sculpt.Tests;

/// <summary>
/// A German machine writes 0,5 where Sculpt's files need 0.5 and reads "--lr 0.5" as 5. Every command runs here
/// under de-DE (ICU's real culture data, not the invariant fallback); its CSV, JSON, tables and arguments must
/// come out exactly as under the invariant culture.
/// </summary>
[Collection("serial")]
public class CultureTests
{
    private static T UnderGerman<T>(Func<T> run)
    {
        var (culture, ui) = (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);
        CultureInfo.CurrentCulture = CultureInfo.CurrentUICulture = new CultureInfo("de-DE");
        try
        {
            Assert.Equal(",", CultureInfo.CurrentCulture.NumberFormat.NumberDecimalSeparator); // ICU data is there
            var result = run();
            Assert.Equal("de-DE", CultureInfo.CurrentCulture.Name); // the caller's culture is the caller's again
            return result;
        }
        finally { (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture) = (culture, ui); }
    }

    private static (int Code, string Out, string Err) Invariant(params string[] args)
    {
        var (culture, ui) = (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);
        CultureInfo.CurrentCulture = CultureInfo.CurrentUICulture = CultureInfo.InvariantCulture;
        try { return TestFiles.Cli(args); }
        finally { (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture) = (culture, ui); }
    }

    private static string[] Files(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Where(f => f.EndsWith(".csv") || f.EndsWith(".json"))
            .Order(StringComparer.Ordinal).Select(f => Path.GetRelativePath(dir, f) + "\n" + File.ReadAllText(f)).ToArray();

    [Fact]
    public void EveryOutputIsTheSameUnderAGermanCultureAsUnderTheInvariantOne()
    {
        var dir = TestFiles.TempDir();
        var data = Path.Combine(dir, "data");
        SynthDataset.Write(data, new SynthOptions { Count = 16, Size = 32, Videos = 1, VideoFrames = 20, Seed = 4 });
        string[] Train(string model) => new[] { "train", "--data", data, "--arch", "unet-small", "--width", "4", "--epochs", "1",
            "--batch", "4", "--lr", "0.002", "--seed", "1", "--out", model, "--json" };
        var model = Path.Combine(dir, "m.sculpt");
        var german = UnderGerman(() => TestFiles.Cli(Train(model)));
        Assert.True(german.Code == 0, german.Err);
        var invariant = Invariant(Train(Path.Combine(dir, "m2.sculpt")));
        Assert.Equal(JsonNode.Parse(invariant.Out)!["val_dice"]!.ToJsonString(), JsonNode.Parse(german.Out)!["val_dice"]!.ToJsonString());
        // --lr 0.002 was read as two thousandths, not as 2
        var training = global::Sculpt.Runtime.ModelPackage.Load(model).Meta.Training!;
        Assert.Equal(0.002, training["options"]!["learning_rate"]!.GetValue<double>());

        foreach (var command in new[]
        {
            new[] { "eval", "--model", model, "--data", data, "--split", "all", "--out", "{out}" },
            new[] { "segment", "--model", model, "--input", Path.Combine(data, "videos", "video_0000"), "--out", "{out}" },
            new[] { "inspect", "--model", model },
            new[] { "inspect", "--model", model, "--json" },
        })
        {
            string outA = Path.Combine(dir, Guid.NewGuid().ToString("N")), outB = Path.Combine(dir, Guid.NewGuid().ToString("N"));
            var a = UnderGerman(() => TestFiles.Cli(command.Select(x => x == "{out}" ? outA : x).ToArray()));
            var b = Invariant(command.Select(x => x == "{out}" ? outB : x).ToArray());
            Assert.True(a.Code == 0 && b.Code == 0, a.Err + b.Err);
            Assert.Equal(b.Out.Replace(outB, "{out}"), a.Out.Replace(outA, "{out}"));
            if (command.Contains("{out}")) Assert.Equal(Files(outB), Files(outA));
        }
    }
}
