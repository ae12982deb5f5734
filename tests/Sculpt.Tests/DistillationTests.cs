using Sculpt.Data;
using Sculpt.Models;
using Sculpt.Runtime;
using Sculpt.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Sculpt.Tests;

[Collection("serial")]
public class DistillationTests
{
    private static readonly UNetConfig Tiny = new() { Depth = 2, BaseWidth = 4, InputSize = 16 };

    private static GraphModule Teacher(UNetConfig config, int seed)
    {
        manual_seed(seed);
        var module = new GraphModule(UNet.Build(config));
        module.eval();
        return module;
    }

    private static double[] Values(Tensor t) => t.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();

    private static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));

    [Theory]
    [InlineData("mse")]
    [InlineData("soft")]
    public void BinaryLossEqualsItsDefinitionComputedInDoubles(string kind)
    {
        using var teacher = Teacher(Tiny, 4);
        manual_seed(8);
        using var x = randn(2, 1, 16, 16);
        using var student = randn(2, 1, 16, 16).mul(3);
        double[] t, s = Values(student);
        using (no_grad()) { using var tt = teacher.forward(x); t = Values(tt); }
        double expected = kind == "mse"
            ? s.Zip(t, (a, b) => (a - b) * (a - b)).Average()
            // cross-entropy against the teacher's probability, written with log-sigmoids as an independent form
            : s.Zip(t, (a, b) => -(Sigmoid(b) * Math.Log(Sigmoid(a)) + (1 - Sigmoid(b)) * Math.Log(1 - Sigmoid(a)))).Average();
        using var loss = Distillation.Loss(teacher, kind, 0.5)(x, student);
        Assert.Equal(0.5 * expected, loss.item<float>(), 1e-5 * Math.Max(1, expected));
    }

    [Fact]
    public void MultiClassSoftLossIsCrossEntropyAgainstTheTeachersSoftmax()
    {
        using var teacher = Teacher(Tiny with { Classes = 3 }, 5);
        manual_seed(9);
        using var x = randn(2, 1, 16, 16);
        using var student = randn(2, 3, 16, 16).mul(2);
        double[] t, s = Values(student);
        using (no_grad()) { using var tt = teacher.forward(x); t = Values(tt); }
        int pixels = 2 * 16 * 16, plane = 16 * 16;
        double sum = 0;
        for (int p = 0; p < pixels; p++)
        {
            int b = p / plane, i = p % plane;
            double[] Logits(double[] v) => Enumerable.Range(0, 3).Select(c => v[(b * 3 + c) * plane + i]).ToArray();
            var ts = Logits(t); var ss = Logits(s);
            double tz = ts.Sum(Math.Exp), sz = ss.Sum(Math.Exp);
            for (int c = 0; c < 3; c++) sum -= Math.Exp(ts[c]) / tz * (ss[c] - Math.Log(sz));
        }
        using var loss = Distillation.Loss(teacher, "soft", 1.0)(x, student);
        Assert.Equal(sum / pixels, loss.item<float>(), 1e-5);
    }

    [Fact]
    public void ATeacherWithItsOwnNormalisationSeesTheSameIntensitiesItWasTrainedOn()
    {
        using var teacher = Teacher(Tiny, 6);
        var studentNorm = new Normalization { Mean = new[] { 0.2 }, Std = new[] { 0.1 } };
        var teacherNorm = new Normalization { Mean = new[] { 0.5 }, Std = new[] { 0.25 } };
        manual_seed(10);
        using var raw = rand(2, 1, 16, 16);
        using var studentInput = raw.sub(0.2).div(0.1);
        using var teacherInput = raw.sub(0.5).div(0.25);
        using var student = randn(2, 1, 16, 16);
        Tensor direct;
        using (no_grad()) direct = teacher.forward(teacherInput);
        double expected = Values(student).Zip(Values(direct), (a, b) => (a - b) * (a - b)).Average();
        using var loss = Distillation.Loss(teacher, "mse", 1.0, studentNorm, teacherNorm)(studentInput, student);
        Assert.Equal(expected, loss.item<float>(), 1e-4 * expected);
        // without the teacher's normalisation it would have seen other inputs
        using var naive = Distillation.Loss(teacher, "mse", 1.0)(studentInput, student);
        Assert.True(Math.Abs(naive.item<float>() - expected) > 1e-3 * expected);
        direct.Dispose();
    }

    [Fact]
    public void AStudentTrainedWithATeacherEndsCloserToIt()
    {
        var dir = Path.Combine(TestFiles.TempDir(), "d");
        SynthDataset.Write(dir, new SynthOptions { Count = 24, Size = 32, Seed = 12 });
        var ds = SegmentationDataset.Load(dir);
        var student = Tiny with { InputSize = 32 };
        var teacherConfig = student with { BaseWidth = 6 };
        // a teacher far from anything the task alone teaches: its (seeded) initialisation, barely trained
        var teacher = TrainJob.Run(ds, "unet", teacherConfig,
            new TrainOptions { Epochs = 1, BatchSize = 4, Seed = 2, LearningRate = 1e-9 }).Model;
        var o = new TrainOptions { Epochs = 3, BatchSize = 4, Seed = 3, LearningRate = 5e-3 };
        var plain = TrainJob.Run(ds, "unet", student, o).Model;
        var distilled = TrainJob.Run(ds, "unet", student, o with { Distill = new DistillFrom(teacher, "mse", 10.0) }).Model;
        var recorded = distilled.Meta.Training!["options"]!["distill"]!;
        Assert.Equal(10.0, recorded["weight"]!.GetValue<double>());
        Assert.Equal(teacher.Graph.ParameterCount(), recorded["teacher_params"]!.GetValue<long>());

        double Distance(ModelPackage student)
        {
            using var s = new GraphModule(student.Graph, student.Weights);
            using var t = new GraphModule(teacher.Graph, teacher.Weights);
            s.eval(); t.eval();
            using var _ = NewDisposeScope();
            var x = Batches.Normalize(Batches.Images(ds.Split("val"), 1, 32, 32, new Normalization()), teacher.Meta.Task.Normalization);
            using (no_grad()) return nn.functional.mse_loss(s.forward(x), t.forward(x)).item<float>();
        }
        double plainDistance = Distance(plain), distilledDistance = Distance(distilled);
        Assert.True(distilledDistance < 0.5 * plainDistance, $"distilled {distilledDistance}, plain {plainDistance}");
    }
}
