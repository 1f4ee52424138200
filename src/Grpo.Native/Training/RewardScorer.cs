namespace Grpo.Native.Training;

/// <summary>The scores of one step's completions.</summary>
/// <param name="Scores">(N, F) row-major: function f's score of completion n; NaN = no score (or a failure).</param>
/// <param name="Failures">(F) how many calls of each function threw, timed out or returned an infinity.</param>
public sealed record RewardScores(float[] Scores, int[] Failures);

/// <summary>
/// Calls every reward function on every completion, concurrently. A call that throws, runs past the
/// timeout or returns ±∞ counts as a failure and scores NaN ("no score"): the completion is left out
/// of its group's baseline instead of stopping the run. A NaN a function returns on purpose is not a failure.
/// </summary>
public static class RewardScorer
{
    /// <summary>Scores <paramref name="inputs"/> with <paramref name="functions"/>.</summary>
    /// <param name="functions">F reward functions.</param>
    /// <param name="inputs">N completions.</param>
    /// <param name="timeout">Longest a single call may run; null for no limit.</param>
    /// <param name="cancellation">Cancels the whole scoring (then it throws).</param>
    public static async Task<RewardScores> ScoreAsync(IReadOnlyList<RewardFunction> functions, IReadOnlyList<RewardInput> inputs,
        TimeSpan? timeout, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(functions);
        ArgumentNullException.ThrowIfNull(inputs);
        int n = inputs.Count, f = functions.Count;
        var calls = new Task<(float Value, bool Failed)>[n * f];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < f; j++)
            {
                var function = functions[j];
                var input = inputs[i];
                calls[i * f + j] = Task.Run(() => CallAsync(function, input, timeout, cancellation), cancellation);
            }
        var results = await Task.WhenAll(calls).ConfigureAwait(false);
        var scores = new float[n * f];
        var failures = new int[f];
        for (int k = 0; k < results.Length; k++)
        {
            scores[k] = results[k].Failed ? float.NaN : results[k].Value;
            if (results[k].Failed) failures[k % f]++;
        }
        return new RewardScores(scores, failures);
    }

    private static async Task<(float, bool)> CallAsync(RewardFunction function, RewardInput input, TimeSpan? timeout,
        CancellationToken cancellation)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        if (timeout is { } t) limit.CancelAfter(t);
        try
        {
            var call = function.Score(input, limit.Token).AsTask();
            // A function that ignores its token still cannot hold the step beyond the timeout.
            var finished = await Task.WhenAny(call, Task.Delay(Timeout.InfiniteTimeSpan, limit.Token)).ConfigureAwait(false);
            if (finished != call)
            {
                cancellation.ThrowIfCancellationRequested();
                _ = call.ContinueWith(c => _ = c.Exception, TaskScheduler.Default); // observe a late fault
                return (float.NaN, true);
            }
            float value = await call.ConfigureAwait(false);
            return float.IsInfinity(value) ? (float.NaN, true) : (value, false);
        }
        catch (Exception) when (!cancellation.IsCancellationRequested)
        {
            return (float.NaN, true); // the function threw or timed out
        }
    }
}
