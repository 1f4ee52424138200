// Renders every (chat template, conversation case) with Hugging Face's JavaScript Jinja
// (@huggingface/jinja, the engine of transformers.js) and writes expected.json next to this file.
// The NUnit tests only read expected.json; this script is for regenerating it.
//
// Regenerate (any directory that has @huggingface/jinja 0.5.11 in node_modules):
//   mkdir -p /tmp/jj && cd /tmp/jj && npm install @huggingface/jinja@0.5.11
//   node <repo>/tests/Grpo.Native.Tests/Tokenization/Templates/data/render-expected.mjs
// then check the result against Python jinja2 (what transformers uses) with
//   python3 <same folder>/check-python-jinja2.py
//
// The module is resolved from the current directory, so run it from the folder holding node_modules.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(join(process.cwd(), "resolve-from-here.js"));
const { Template } = require("@huggingface/jinja");
const jinjaEntry = require.resolve("@huggingface/jinja");
const jinjaVersion = JSON.parse(readFileSync(join(dirname(jinjaEntry), "..", "package.json"), "utf8")).version;
const here = dirname(fileURLToPath(import.meta.url));

// Special tokens as each model's tokenizer_config.json sets them (transformers passes the ones that are set).
const templates = {
  "qwen2.5-instruct.jinja": { eos_token: "<|im_end|>", pad_token: "<|endoftext|>" },
  "qwen3.jinja": { eos_token: "<|im_end|>", pad_token: "<|endoftext|>" },
  "llama3-8b-instruct.jinja": { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  "llama3.1-instruct.jinja": { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  "llama3.2-instruct.jinja": { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  "deepseek-v3.jinja": { bos_token: "<｜begin▁of▁sentence｜>", eos_token: "<｜end▁of▁sentence｜>", pad_token: "<｜end▁of▁sentence｜>" },
  "deepseek-r1-distill.jinja": { bos_token: "<｜begin▁of▁sentence｜>", eos_token: "<｜end▁of▁sentence｜>", pad_token: "<｜end▁of▁sentence｜>" },
  "gemma3.jinja": { bos_token: "<bos>", eos_token: "<end_of_turn>", pad_token: "<pad>", unk_token: "<unk>" },
  "smollm2-instruct.jinja": { bos_token: "<|im_start|>", eos_token: "<|im_end|>", pad_token: "<|im_end|>", unk_token: "<|endoftext|>" },
  "phi3-mini-4k-instruct.jinja": { bos_token: "<s>", eos_token: "<|endoftext|>", pad_token: "<|endoftext|>", unk_token: "<unk>" },
  "phi3.5-mini-instruct.jinja": { bos_token: "<s>", eos_token: "<|endoftext|>", pad_token: "<|endoftext|>", unk_token: "<unk>" },
  "phi4-mini-instruct.jinja": { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", pad_token: "<|endoftext|>", unk_token: "<|endoftext|>" },
};

const user = (content) => ({ role: "user", content });
const assistant = (content, extra = {}) => ({ role: "assistant", content, ...extra });
const system = (content) => ({ role: "system", content });

const conversations = {
  single: [user("Hello, how are you?")],
  multi: [system("You are a terse assistant."), user("What is 2+2?"), assistant("4."), user("And 3+3?")],
  assistantLast: [user("Name a prime."), assistant("7")],
  unicode: [user("Grüße aus Köln! 你好，世界 🌍🚀 — naïve café"), assistant("¡Hola! 👋 Ça va très bien."), user("Emoji only: 🙂🙃")],
  tricky: [
    system("  Rules:\n{{ not a tag }} {% if x %} {# nor a comment #}\n\tindented  "),
    user("Line one\nLine two\n\n  {{ user_input }} {%- raw -%} \\n \n"),
  ],
  thinkHistory: [user("What is 1+1?"), assistant("<think>\nAdd one and one.\n</think>\n\n2"), user("And 2+2?")],
  thinkLast: [user("What is 1+1?"), assistant("<think>\nAdd one and one.\n</think>\n\n2")],
  reasoningField: [user("Capital of France?"), assistant("Paris.", { reasoning_content: "\nIt is Paris.\n" })],
  doubleUser: [user("first"), user("second")],
  gemmaParts: [
    { role: "system", content: [{ type: "text", text: "Be kind." }] },
    { role: "user", content: [{ type: "text", text: " Look " }, { type: "image" }, { type: "text", text: "here." }] },
  ],
};

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", description: "City name, e.g. Zürich" }, days: { type: "integer" } },
      required: ["city"],
    },
  },
};
const toolCall = (args) => ({ type: "function", function: { name: "get_weather", arguments: args } });
const toolTurns = [
  user("Weather in Paris?"),
  assistant("", { tool_calls: [toolCall({ city: "Paris", days: 2 })] }),
  { role: "tool", content: "{\"temp\": 21.5, \"sky\": \"clear\"}" },
];
const deepseekToolTurns = [
  user("Weather in Paris and Rome?"),
  assistant(null, { tool_calls: [toolCall("{\"city\": \"Paris\"}"), toolCall("{\"city\": \"Rome\"}")] }),
  { role: "tool", content: "21.5" },
  { role: "tool", content: "24" },
  assistant("Paris 21.5, Rome 24."),
];

const common = [
  ["single_gen", conversations.single, true],
  ["single_nogen", conversations.single, false],
  ["system_multi", conversations.multi, true],
  ["assistant_last", conversations.assistantLast, false],
  ["unicode", conversations.unicode, true],
  ["tricky_text", conversations.tricky, true],
];

// [case name, messages, add_generation_prompt, extra variables]
const casesFor = {
  "qwen2.5-instruct.jinja": [
    ["tools", toolTurns, true, { tools: [weatherTool] }],
  ],
  "qwen3.jinja": [
    ["thinking_off", conversations.single, true, { enable_thinking: false }],
    ["thinking_on", conversations.single, true, { enable_thinking: true }],
    ["think_history", conversations.thinkHistory, true],
    ["think_last", conversations.thinkLast, false],
    ["reasoning_field", conversations.reasoningField, false],
    ["tools", toolTurns, true, { tools: [weatherTool] }],
  ],
  "llama3.1-instruct.jinja": [
    ["default_date", conversations.single, true, { date_string: undefined }],
    ["tools", [user("Weather in Paris?"), assistant("", { tool_calls: [toolCall({ city: "Paris", days: 2 })] }), { role: "tool", content: "21.5 C" }], true, { tools: [weatherTool] }],
    ["two_tool_calls_rejected", [user("Weather?"), assistant("", { tool_calls: [toolCall({ city: "Paris" }), toolCall({ city: "Rome" })] })], true],
  ],
  "llama3.2-instruct.jinja": [
    ["tools", [user("Weather in Paris?"), assistant("", { tool_calls: [toolCall({ city: "Paris", days: 2 })] }), { role: "tool", content: "21.5 C" }], true, { tools: [weatherTool] }],
  ],
  "deepseek-v3.jinja": [
    ["tool_calls", deepseekToolTurns, true],
    ["two_systems", [system("First rule."), system("Second rule."), user("Go.")], true],
  ],
  "deepseek-r1-distill.jinja": [
    ["think_history", conversations.thinkHistory, true],
    ["tool_calls", deepseekToolTurns, true],
  ],
  "gemma3.jinja": [
    ["bad_alternation", conversations.doubleUser, true],
    ["content_parts", conversations.gemmaParts, true],
  ],
};

// Llama 3.1/3.2 read date_string (3.2 calls strftime_now without it): pass a fixed one so the output is stable.
const fixedVariables = {
  "llama3.1-instruct.jinja": { date_string: "02 Dec 2026" },
  "llama3.2-instruct.jinja": { date_string: "02 Dec 2026" },
};

const results = [];
for (const [file, tokens] of Object.entries(templates)) {
  const source = readFileSync(join(here, file), "utf8");
  const template = new Template(source);
  for (const [name, messages, addGenerationPrompt, extra = {}] of [...common, ...(casesFor[file] ?? [])]) {
    // transformers passes messages, tools and documents (None when absent), add_generation_prompt and the special tokens.
    const variables = { messages, tools: null, documents: null, add_generation_prompt: addGenerationPrompt, ...tokens, ...(fixedVariables[file] ?? {}), ...extra };
    for (const key of Object.keys(variables)) if (variables[key] === undefined) delete variables[key];
    const entry = { template: file, case: name, variables };
    try {
      entry.expected = template.render(structuredClone(variables));
    } catch (error) {
      entry.error = String(error.message);
    }
    results.push(entry);
  }
}

const output = { generator: `@huggingface/jinja ${jinjaVersion} via render-expected.mjs`, cases: results };
writeFileSync(join(here, "expected.json"), JSON.stringify(output, null, 1) + "\n");
console.log(`wrote ${results.length} cases (${results.filter((r) => r.error).length} errors) to expected.json`);
