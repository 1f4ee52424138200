using System.Reflection;
using Parquet;
using Parquet.Data;
using Parquet.Schema;

namespace Grpo.Native.Datasets;

/// <summary>
/// Reads a Parquet file (Hugging Face datasets' on-disk format) into rows of plain values: each leaf column of a
/// row group is read once, with its definition and repetition levels, and the rows are assembled from them
/// (Dremel record assembly), so nested lists, structs and maps come out as lists and dictionaries, and a null
/// list stays distinct from an empty one.
/// </summary>
internal static class ParquetRowReader
{
    /// <exception cref="PromptDatasetException">The file is not Parquet, or it has no column named <paramref name="promptColumn"/>.</exception>
    public static async Task<List<RawRow>> ReadAsync(string path, string promptColumn, CancellationToken cancellationToken)
    {
        ParquetReader reader;
        try
        {
            reader = await ParquetReader.CreateAsync(path, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException and not FileNotFoundException and not UnauthorizedAccessException)
        {
            throw new PromptDatasetException($"'{path}' is not a readable Parquet file ({e.Message}).", e);
        }
        await using (reader.ConfigureAwait(false))
        {
            var fields = reader.Schema.Fields;
            if (!fields.Any(f => f.Name == promptColumn))
                throw new PromptDatasetException(
                    $"'{path}' has no column '{promptColumn}'; its columns are: {PromptValue.ListColumns(fields.Select(f => f.Name))}. " +
                    "Pass the name of the column that holds the prompt (promptColumn).")
                { MissingColumn = promptColumn };
            try
            {
                return await ReadRowsAsync(reader, path, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not PromptDatasetException and not OperationCanceledException)
            {
                // Parquet.Net's own errors (a truncated page, an unknown encoding) do not say which file.
                throw new PromptDatasetException($"'{path}' could not be read as Parquet ({e.Message}).", e);
            }
        }
    }

    private static async Task<List<RawRow>> ReadRowsAsync(ParquetReader reader, string path, CancellationToken cancellationToken)
    {
        var fields = reader.Schema.Fields;
        var rows = new List<RawRow>();
        for (int group = 0; group < reader.RowGroupCount; group++)
        {
            var groupReader = reader.OpenRowGroupReader(group);
            var nodes = new List<Node>(fields.Count);
            foreach (var field in fields)
                nodes.Add(await BuildAsync(field, groupReader, path, cancellationToken).ConfigureAwait(false));
            for (long r = 0; r < groupReader.RowCount; r++)
            {
                var row = new Dictionary<string, object?>(nodes.Count);
                foreach (var node in nodes)
                    if (!row.TryAdd(node.Name, node.Read()))
                        throw new PromptDatasetException($"'{path}' has two columns named '{node.Name}'.");
                rows.Add(new RawRow(row, $"'{path}' row {rows.Count}"));
            }
            foreach (var node in nodes)
                if (node.Leaves.Any(leaf => !leaf.AtEnd))
                    throw new PromptDatasetException(
                        $"'{path}' row group {group}: column '{node.Name}' holds more values than the group's {groupReader.RowCount} rows; the file is corrupt.");
        }
        return rows;
    }

    /// <summary>The assembly tree of <paramref name="field"/>, with every leaf column under it read.</summary>
    private static async Task<Node> BuildAsync(Field field, ParquetRowGroupReader group, string path, CancellationToken cancellationToken)
    {
        switch (field)
        {
            case DataField data:
                var leaf = await Leaf.ReadAsync(data, group, path, cancellationToken).ConfigureAwait(false);
                return data.IsArray ? new RepeatedLeafNode(data, leaf) : new LeafNode(data, leaf);
            case ListField list:
                return new ListNode(list, await BuildAsync(list.Item, group, path, cancellationToken).ConfigureAwait(false));
            case MapField map:
                return new MapNode(map,
                    await BuildAsync(map.Key, group, path, cancellationToken).ConfigureAwait(false),
                    await BuildAsync(map.Value, group, path, cancellationToken).ConfigureAwait(false));
            case StructField structure:
                var children = new List<Node>(structure.Fields.Count);
                foreach (var child in structure.Fields)
                    children.Add(await BuildAsync(child, group, path, cancellationToken).ConfigureAwait(false));
                return new StructNode(structure, children);
            default:
                throw new PromptDatasetException($"'{path}': column '{field.Path}' is of a kind ({field.SchemaType}) this reader does not know.");
        }
    }

    /// <summary>One leaf column of a row group: its levels, its defined values (plain) and a cursor over them.</summary>
    private sealed class Leaf
    {
        private static readonly MethodInfo ConvertMethod =
            typeof(Leaf).GetMethod(nameof(Convert), BindingFlags.NonPublic | BindingFlags.Static)!;

        private readonly int[]? _definitions; // null: the column is required all the way down (every level is the maximum)
        private readonly int[]? _repetitions; // null: the column is not under any list
        private readonly object?[] _values;   // the defined values only, in order
        private readonly int _count;
        private readonly int _maxDefinition;
        private readonly string _where;
        private int _position;
        private int _valuePosition;

        private Leaf(int[]? definitions, int[]? repetitions, object?[] values, int count, int maxDefinition, string where)
        {
            _where = where;
            _definitions = definitions;
            _repetitions = repetitions;
            _values = values;
            _count = count;
            _maxDefinition = maxDefinition;
        }

        public static async Task<Leaf> ReadAsync(DataField field, ParquetRowGroupReader group, string path, CancellationToken cancellationToken)
        {
            using RawColumnData raw = await group.ReadRawColumnDataBaseAsync(field, cancellationToken).ConfigureAwait(false);
            int[]? definitions = field.MaxDefinitionLevel > 0 ? raw.DefinitionLevels.ToArray() : null;
            int[]? repetitions = field.MaxRepetitionLevel > 0 ? raw.RepetitionLevels.ToArray() : null;
            // The values buffer may be longer than the values it holds: only the defined entries carry one.
            int defined = definitions?.Count(d => d == field.MaxDefinitionLevel) ?? -1;
            string where = $"'{path}': column '{field.Path}'";
            var values = (object?[])ConvertMethod.MakeGenericMethod(field.ClrType)
                .Invoke(null, BindingFlags.DoNotWrapExceptions, null, [raw, defined, where], null)!;
            int count = definitions?.Length ?? values.Length;
            if (repetitions is not null && repetitions.Length != count)
                throw new PromptDatasetException(
                    $"{where} has {count} definition levels but {repetitions.Length} repetition levels; the file is corrupt.");
            return new Leaf(definitions, repetitions, values, count, field.MaxDefinitionLevel, where);
        }

        private static object?[] Convert<T>(RawColumnData raw, int defined, string where) where T : struct
        {
            var span = ((RawColumnData<T>)raw).Values;
            int n = defined < 0 ? span.Length : defined;
            if (n > span.Length)
                throw new PromptDatasetException($"{where} has {n} defined entries but holds {span.Length} values; the file is corrupt.");
            var values = new object?[n];
            for (int i = 0; i < n; i++) values[i] = ParquetValues.ToPlain(span[i]);
            return values;
        }

        public bool AtEnd => _position >= _count;

        public int Definition => AtEnd ? throw Exhausted() : _definitions?[_position] ?? _maxDefinition;

        public int Repetition => AtEnd ? throw Exhausted() : _repetitions?[_position] ?? 0;

        private PromptDatasetException Exhausted() =>
            new($"{_where} holds fewer entries than its row group has rows; the file is corrupt.");

        /// <summary>The value of the current entry (null unless it is defined all the way down), moving past it.</summary>
        public object? Take()
        {
            if (AtEnd) throw Exhausted();
            bool defined = Definition == _maxDefinition;
            _position++;
            return defined ? _values[_valuePosition++] : null;
        }

        /// <summary>Moves past the current entry, which stands for a null or empty ancestor and has no value.</summary>
        public void Skip() => _position = AtEnd ? throw Exhausted() : _position + 1;
    }

    /// <summary>
    /// A field of the schema with the leaves under it. <see cref="Read"/> consumes exactly the entries of one
    /// occurrence of the field from every leaf below, its ancestors being present.
    /// </summary>
    private abstract class Node(Field field, IReadOnlyList<Leaf> leaves)
    {
        public string Name { get; } = field.Name;

        public IReadOnlyList<Leaf> Leaves { get; } = leaves;

        /// <summary>The field's definition level when it is present (for a list: when it has an element).</summary>
        protected int Level { get; } = field.MaxDefinitionLevel;

        protected int RepetitionLevel { get; } = field.MaxRepetitionLevel;

        // Every leaf below holds the same level entries for this field's occurrence; the first one decides.
        protected Leaf First => Leaves[0];

        public abstract object? Read();

        /// <summary>Consumes this occurrence where it is null or empty: one entry in every leaf below.</summary>
        protected void SkipOccurrence()
        {
            foreach (var leaf in Leaves) leaf.Skip();
        }

        /// <summary>Reads the elements of one non-empty repeated occurrence, until an entry starts a new one.</summary>
        protected void ReadElements(Action readOne)
        {
            do readOne();
            while (!First.AtEnd && First.Repetition == RepetitionLevel);
        }
    }

    private sealed class LeafNode(DataField field, Leaf leaf) : Node(field, [leaf])
    {
        public override object? Read() => First.Take();
    }

    /// <summary>A bare repeated primitive (the legacy two-level list): no null, an empty list below its level.</summary>
    private sealed class RepeatedLeafNode(DataField field, Leaf leaf) : Node(field, [leaf])
    {
        public override object? Read()
        {
            var list = new List<object?>();
            if (First.Definition < Level) SkipOccurrence();
            else ReadElements(() => list.Add(First.Take()));
            return list;
        }
    }

    private sealed class ListNode(ListField field, Node item) : Node(field, item.Leaves)
    {
        public override object? Read()
        {
            // Level − 1 is "the list is there"; Level is "it has an element".
            int definition = First.Definition;
            if (definition < Level - 1) { SkipOccurrence(); return null; }
            var list = new List<object?>();
            if (definition == Level - 1) SkipOccurrence();
            else ReadElements(() => list.Add(item.Read()));
            return list;
        }
    }

    /// <summary>A map becomes a dictionary keyed by the key's invariant text (JSON objects have string keys too).</summary>
    private sealed class MapNode(MapField field, Node key, Node value) : Node(field, [.. key.Leaves, .. value.Leaves])
    {
        public override object? Read()
        {
            int definition = First.Definition;
            if (definition < Level - 1) { SkipOccurrence(); return null; }
            var map = new Dictionary<string, object?>();
            if (definition == Level - 1) SkipOccurrence();
            else
                ReadElements(() =>
                {
                    string name = System.Convert.ToString(key.Read(), System.Globalization.CultureInfo.InvariantCulture) ?? "";
                    map[name] = value.Read();
                });
            return map;
        }
    }

    private sealed class StructNode(StructField field, List<Node> children) : Node(field, [.. children.SelectMany(c => c.Leaves)])
    {
        public override object? Read()
        {
            if (First.Definition < Level) { SkipOccurrence(); return null; }
            var fields = new Dictionary<string, object?>(children.Count);
            foreach (var child in children) fields[child.Name] = child.Read();
            return fields;
        }
    }
}
