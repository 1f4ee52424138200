using Grpo.Native.Training;
using NUnit.Framework;

namespace Grpo.Native.Tests.Training;

/// <summary>Learning-rate schedules at hand-computed steps (Hugging Face transformers formulas).</summary>
public sealed class LearningRateScheduleTests
{
    private const float Peak = 1e-3f;

    private static void At(LearningRateSchedule schedule, int step, double expected) =>
        Assert.That(schedule.At(step), Is.EqualTo(expected).Within(1e-9), $"{schedule.Kind} at step {step}");

    [Test]
    public void ConstantIsThePeakEverywhere()
    {
        var s = new LearningRateSchedule(LearningRateScheduleKind.Constant, Peak, 100, 10);
        foreach (int step in new[] { 0, 10, 55, 100, 200 }) At(s, step, Peak);
    }

    [Test]
    public void LinearWarmupRisesThenHolds()
    {
        var s = new LearningRateSchedule(LearningRateScheduleKind.LinearWarmup, Peak, 100, 10);
        At(s, 0, 0);
        At(s, 5, Peak * 0.5);
        At(s, 10, Peak);
        At(s, 100, Peak);
    }

    [Test]
    public void CosineWarmsUpThenDecaysToTheMinimum()
    {
        var s = new LearningRateSchedule(LearningRateScheduleKind.Cosine, Peak, 110, 10);
        At(s, 0, 0);
        At(s, 5, Peak * 0.5);
        At(s, 10, Peak);
        At(s, 35, Peak * 0.5 * (1 + Math.Cos(Math.PI * 0.25)));
        At(s, 60, Peak * 0.5);
        At(s, 110, 0);
        At(s, 150, 0); // held at the end, not climbing back
        var floor = s with { MinRatio = 0.1f };
        At(floor, 60, Peak * (0.1 + 0.9 * 0.5));
        At(floor, 110, Peak * 0.1);
    }

    [Test]
    public void LinearDecayWarmsUpThenFallsToZero()
    {
        var s = new LearningRateSchedule(LearningRateScheduleKind.LinearDecay, Peak, 110, 10);
        At(s, 0, 0);
        At(s, 10, Peak);
        At(s, 60, Peak * 0.5);
        At(s, 85, Peak * 0.25);
        At(s, 110, 0);
        At(s, 120, 0);
        var noWarmup = s with { WarmupSteps = 0 };
        At(noWarmup, 0, Peak);
        At(noWarmup, 55, Peak * 0.5);
    }

    [Test]
    public void BadConfigurationsNameTheField()
    {
        var ok = new LearningRateSchedule(LearningRateScheduleKind.Cosine, Peak, 100, 10);
        void Expect(string name, LearningRateSchedule s, int step = 0)
        {
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => s.At(step));
            Assert.That(error!.ParamName, Is.EqualTo(name));
            Assert.That(error.Message, Does.Contain(name));
        }
        Expect("TotalSteps", ok with { TotalSteps = 0 });
        Expect("WarmupSteps", ok with { WarmupSteps = 101 });
        Expect("WarmupSteps", ok with { WarmupSteps = -1 });
        Expect("PeakLearningRate", ok with { PeakLearningRate = -1e-3f });
        Expect("PeakLearningRate", ok with { PeakLearningRate = float.PositiveInfinity });
        Expect("MinRatio", ok with { MinRatio = 1.5f });
        Expect("Kind", ok with { Kind = (LearningRateScheduleKind)42 });
        Expect("step", ok, -1);
    }
}
