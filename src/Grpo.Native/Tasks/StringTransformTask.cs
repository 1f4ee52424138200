using Grpo.Native.Checkpoints;
using Grpo.Native.Models;
using Grpo.Native.Operations;
using Grpo.Native.Tokenization;
using Grpo.Native.Training;

namespace Grpo.Native.Tasks;

/// <summary>
/// A built-in task with a verifiable reward, small enough that a randomly initialised policy learns
/// it from reward alone on a laptop: the prompt is a short word over a small alphabet followed by
/// '=', and the completion must be a fixed transformation of the word (its reverse, say) followed by
/// the end-of-sequence token. Character-level tokenizer; prompts are drawn from a seeded generator,
/// and a held-out set of words never appears in training.
/// </summary>
public sealed class StringTransformTask
{
    private readonly Func<string, string> _transform;
    private readonly HashSet<string> _heldOut;

    private StringTransformTask(string name, string description, string alphabet, int minLength, int maxLength,
        Func<string, string> transform)
    {
        Name = name;
        Description = description;
        Alphabet = alphabet;
        MinLength = minLength;
        MaxLength = maxLength;
        _transform = transform;
        Tokenizer = new CharacterTokenizer(alphabet + "=");
        // A fixed held-out set, disjoint from training prompts.
        var random = new Random(20261124);
        var heldOut = new List<string>();
        _heldOut = new HashSet<string>(StringComparer.Ordinal);
        while (heldOut.Count < HeldOutCount)
        {
            string word = RandomWord(random);
            if (_heldOut.Add(word)) heldOut.Add(word);
        }
        HeldOutWords = heldOut;
    }

    private const int HeldOutCount = 64;

    /// <summary>The task's name on the command line.</summary>
    public string Name { get; }

    /// <summary>One line for --help.</summary>
    public string Description { get; }

    /// <summary>The characters words are made of.</summary>
    public string Alphabet { get; }

    /// <summary>Shortest word.</summary>
    public int MinLength { get; }

    /// <summary>Longest word.</summary>
    public int MaxLength { get; }

    /// <summary>The alphabet plus '=', with BOS and EOS.</summary>
    public CharacterTokenizer Tokenizer { get; }

    /// <summary>Words kept out of training, for evaluation.</summary>
    public IReadOnlyList<string> HeldOutWords { get; }

    /// <summary>The most reward a completion can get.</summary>
    public float MaxReward => 1f;

    /// <summary>Longest prompt in tokens: BOS, the word, '='.</summary>
    public int MaxPromptLength => MaxLength + 2;

    /// <summary>Longest useful completion: the answer and EOS, with room for one extra token.</summary>
    public int MaxCompletionLength => MaxLength + 2;

    /// <summary>The built-in tasks.</summary>
    public static IReadOnlyList<StringTransformTask> All { get; } =
    [
        new("reverse", "write the word backwards: abcd= -> dcba", "abcdef", 3, 5, word => new string(word.Reverse().ToArray())),
        new("copy", "write the word again: abcd= -> abcd", "abcdef", 3, 5, word => word),
    ];

    /// <summary>The task named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No task has that name; the message lists them.</exception>
    public static StringTransformTask Get(string name) =>
        All.FirstOrDefault(t => t.Name == name)
        ?? throw new ArgumentException($"There is no task '{name}'; the built-in tasks are {string.Join(", ", All.Select(t => t.Name))}.", nameof(name));

    /// <summary>The answer the reward checks against.</summary>
    public string Expected(string word) => _transform(word);

    /// <summary>The prompt's token ids: BOS, the word, '='.</summary>
    public int[] PromptTokens(string word) => [Tokenizer.Bos, .. Tokenizer.Encode(word + "=")];

    /// <summary>The word a prompt holds (its text without the trailing '=').</summary>
    public static string WordOf(string promptText) => promptText.TrimEnd('=');

    /// <summary>The training words of <paramref name="step"/> (1-based): drawn from (seed, step), never a held-out word.</summary>
    public string[] TrainingWords(int seed, int step, int count)
    {
        // A fixed mix of (seed, step): HashCode.Combine would be randomised per process, and a resumed run must draw the same words.
        var random = new Random(unchecked((int)Mix((uint)seed, (uint)step)));
        var words = new string[count];
        for (int i = 0; i < count; i++)
        {
            string word;
            do word = RandomWord(random); while (_heldOut.Contains(word));
            words[i] = word;
        }
        return words;
    }

    /// <summary>SplitMix64's finaliser over (seed, step): a stable, well-spread seed for each step.</summary>
    private static ulong Mix(uint seed, uint step)
    {
        ulong z = ((ulong)seed << 32 | step) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private string RandomWord(Random random)
    {
        int length = random.Next(MinLength, MaxLength + 1);
        return string.Create(length, (random, Alphabet), static (span, state) =>
        {
            for (int i = 0; i < span.Length; i++) span[i] = state.Alphabet[state.random.Next(state.Alphabet.Length)];
        });
    }

    /// <summary>
    /// The reward, in [0, 1]: characters in the right place, over the longer of answer and completion
    /// (so extra characters cost as much as missing ones), and 0 unless the completion ends with EOS.
    /// </summary>
    public float Score(string promptText, IReadOnlyList<int> completionTokens)
    {
        string expected = Expected(WordOf(promptText));
        bool ended = completionTokens.Count > 0 && completionTokens[^1] == Tokenizer.Eos;
        if (!ended) return 0f;
        string text = Tokenizer.Decode(completionTokens);
        int right = 0;
        for (int i = 0; i < Math.Min(text.Length, expected.Length); i++)
            if (text[i] == expected[i]) right++;
        return right / (float)Math.Max(text.Length, expected.Length);
    }

    /// <summary>The reward functions the trainer uses.</summary>
    public IReadOnlyList<RewardFunction> Rewards() =>
        [RewardFunction.Create(Name, input => Score(input.Prompt, input.CompletionTokens))];

    /// <summary>
    /// Mean reward of <paramref name="model"/> on <paramref name="words"/> with greedy decoding (temperature 0):
    /// the held-out score the <c>grpo train</c> command reports before and after training.
    /// </summary>
    public float Evaluate(TransformerModel model, IReadOnlyList<string> words)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(words);
        if (words.Count == 0) throw new ArgumentException("Pass at least one word to evaluate on.", nameof(words));
        using var generator = new RolloutGenerator(model, words.Count, MaxPromptLength, MaxCompletionLength, words.Count * MaxPromptLength);
        var prompts = words.Select(PromptTokens).ToArray();
        var rollout = generator.Generate(prompts, 1, MaxCompletionLength, new SamplingOptions { Temperature = 0 }, [Tokenizer.Eos], seed: 0);
        double total = 0;
        for (int i = 0; i < words.Count; i++) total += Score(words[i] + "=", rollout.Completions[i]);
        return (float)(total / words.Count);
    }

    /// <summary>The default model: a tiny Llama-family policy, randomly initialised.</summary>
    public ModelConfig DefaultModel() => new()
    {
        ModelType = "llama",
        VocabSize = Tokenizer.VocabularySize,
        HiddenSize = 64,
        NumLayers = 2,
        NumHeads = 4,
        NumKeyValueHeads = 2,
        IntermediateSize = 176,
        MaxPositions = MaxPromptLength + MaxCompletionLength,
        NormEpsilon = 1e-5,
        RopeTheta = 10000,
        TieWordEmbeddings = true,
    };
}
