"""The config schema: every key of a run's YAML file, with its type, default and meaning.

This module is the one place where defaults live. ``docs/config.md`` is generated from it by
:func:`render_markdown` (a test checks the committed file is up to date)::

    python -c "from paddlepalm.config.schema import render_markdown; print(render_markdown(), end='')" > docs/config.md
"""
import copy
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from paddlepalm.engine.args import default as _training_default
from paddlepalm.engine.sampling import STEP_MODES, STRATEGIES

# How a key's value is checked: a plain value, a section of fixed keys, a mapping of named
# sections (tasks), or a component (a registered name / dotted path, or a mapping with 'type').
VALUE, SECTION, NAMED, COMPONENT = "value", "section", "named", "component"
TYPE_NAMES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "list": "list",
              "mapping": "mapping"}


@dataclass(frozen=True)
class Key:
    """One config key. ``keys`` are the sub-keys of a section (or of each named entry)."""

    name: str
    doc: str
    types: Tuple[str, ...] = ()
    default: Any = None
    required: bool = False
    kind: str = VALUE
    keys: Tuple["Key", ...] = ()
    choices: Tuple[Any, ...] = ()
    minimum: Optional[float] = None
    above_minimum: bool = False  # the value must be > minimum (else >= minimum)
    maximum: Optional[float] = None
    path: bool = False  # a file or folder, relative to the config file's folder
    extra_options: bool = False  # a section that also takes its component's constructor options
    null_ok: bool = False  # `null` is a meaningful value although the default is not null
    unless: Optional[str] = None  # a required key that may be left out when this sibling key is given

    @property
    def nullable(self) -> bool:
        return self.null_ok or (not self.required and self.default is None and self.kind == VALUE)

    def child(self, name: str) -> Optional["Key"]:
        return next((k for k in self.keys if k.name == name), None)


def _v(name, types, doc, default=None, **kw) -> Key:
    return Key(name, doc, tuple(types.split("|")), default, **kw)


BACKBONE = Key("backbone", "The shared encoder: pretrained weights, or a config for random initialisation.",
               kind=SECTION, required=True, keys=(
                   _v("type", "str", "Registered backbone name (`bert`, `ernie`, `roberta`) or a dotted path "
                      "`pkg.module:Class`.", "bert"),
                   _v("pretrained", "str", "Checkpoint folder (paddlepalm, PaddleNLP, Hugging Face or PALM 1.x "
                      "layout), or a downloader catalog name (see `paddlepalm ls pretrain`) that is fetched "
                      "into `download_dir`. Give `pretrained` or `config`, not both."),
                   _v("config", "mapping|str", "Encoder hyper-parameters for a randomly initialised encoder: a "
                      "mapping (`hidden_size`, `num_hidden_layers`, `vocab_size`, ...) or a JSON file.",
                      path=True),
                   _v("overrides", "mapping", "Encoder config values to replace, e.g. "
                      "`{hidden_dropout_prob: 0.0}`.", {}),
                   _v("download_dir", "str", "Where catalog checkpoints are downloaded (relative to the "
                      "current folder).", "pretrain_models"),
               ))

TOKENIZER = Key("tokenizer", "The tokenizer shared by every task.", kind=SECTION, keys=(
    _v("vocab", "str", "Vocabulary file (WordPiece `vocab.txt`; BPE `vocab.json` beside `merges.txt`) or "
       "checkpoint folder. Default: `backbone.pretrained`.", path=True),
    _v("type", "str", "`wordpiece` or `bpe` (for a vocabulary file; a folder says for itself), or "
       "`codepoint` (Canine: Unicode code points, no vocabulary needed).", "wordpiece",
       choices=("wordpiece", "bpe", "codepoint")),
    _v("do_lower_case", "bool", "Lower-case the text; `null` follows the checkpoint's tokenizer config "
       "or guesses from the vocabulary."),
))

TASK_KEYS = (
    Key("reader", "Reader: a registered name (`classify`, `sequence_label`, `match`, `mrc`, `mask_lm`, "
        "`joint_label`: a sentence label and word tags per line, for two tasks, see `input_of`) or "
        "a dotted path `pkg.module:Class`, or a mapping `{type: <name>, <option>: <value>, ...}` whose "
        "options go to the reader's constructor (e.g. `token_sep`, `doc_stride`, `mask_prob`, "
        "`multi_label`, `learning_strategy`, `truncation`, `bucket_by_length`; `header: false` for TSV/CSV "
        "files without a header line; `label_normalize: strip` or `lower` to merge labels that differ only "
        "in whitespace or case, otherwise an error). A reader in a module file next to the config: "
        "`{type: my_readers.py:MyReader}` (the path is relative to the config's folder); see "
        "docs/custom_reader.md. A task with `input_of` has none.",
        kind=COMPONENT, required=True, unless="input_of"),
    Key("head", "Head: a name, a dotted path, or `{type: <name>, <option>: <value>, ...}`. Default: the "
        "head registered under the reader's name. `num_classes` (from the label map, or the largest "
        "integer label + 1), `input_dim` (the backbone's hidden size), `vocab_size` (the tokenizer's) "
        "and any option the train reader also has (e.g. `max_query_len`, `multi_label`, "
        "`learning_strategy`) are inferred when not given.", kind=COMPONENT),
    _v("input_of", "str", "Read the batches of this other task: the same examples, tokenized once, one "
       "encoder pass per batch for both tasks (docs/balancing.md, \"Tasks over the same inputs\"). That "
       "task's reader must feed several heads (`joint_label`: its batches carry the sentence `label`, "
       "which a `classify` head reads, and the `word_labels`, which a `sequence_label` head reads); each "
       "task gets the part its `head` reads, and no two tasks may read the same one. This task gives no "
       "`reader`, `train`, `dev`, `test`, `file_format`, `fields`, `batch_size`, `max_len` or `mix_ratio`: "
       "they are the other task's (the two run together). Its `label_map` is the map of the labels its "
       "head predicts (as the other task's is of its own)."),
    _v("train", "str", "Training file.", required=True, path=True, unless="input_of"),
    _v("dev", "str", "Development file, evaluated every `eval_steps` and at the end.", path=True),
    _v("test", "str", "Test file (`paddlepalm evaluate --split test`).", path=True),
    _v("file_format", "str", "`tsv` (PALM), `csv`, `jsonl` (one JSON object per line), `json` (a JSON array "
       "of objects, or JSON lines; SQuAD JSON for `mrc`), `conll` or `txt`; `null` guesses from the file name. "
       "`check` compares it with the content (JSON read as TSV is an error)."),
    _v("fields", "mapping", "Reader input -> column (or JSON field) of the files, e.g. "
       "`{text_a: question, text_b: passage, label: is_duplicate}`, or a column number from 1 (`{text_a: 2, "
       "label: 1}`, e.g. with the reader option `header: false`); other columns keep their names."),
    _v("label_map", "str|list|mapping", "Label names in id order (list), `{name: id}`, or a JSON file of "
       "either. Default: built from the training file (PALM integer labels need none). Over a `joint_label` "
       "reader, the map of the labels this task's head predicts: the sentence labels (`classify` head) or "
       "the tags (`sequence_label` head), whichever task declares the reader.", path=True),
    _v("mix_ratio", "float", "Sampling weight of this task (`sampling.strategy: mix_ratio`). A task with "
       "`input_of` runs whenever the task it reads from does, at that task's weight.", 1.0, minimum=0),
    _v("loss_weight", "float", "Multiplier of this task's loss.", 1.0, minimum=0),
    _v("batch_size", "int", "Batch size of this task. Default: the top-level `batch_size`.", minimum=1),
    _v("max_len", "int", "Maximum sequence length of this task. Default: the top-level `max_len`.",
       minimum=2),
    _v("reuse_head_with", "str", "Share the head (and its parameters) of this other task."),
    _v("aux", "bool", "Auxiliary task: trained, but never the main task.", False),
)
TASKS = Key("tasks", "The tasks, by name (a name has no `.` or `/`). The first is the main task unless "
            "`main_task` says otherwise.", kind=NAMED, required=True, keys=TASK_KEYS)

SAMPLING = Key("sampling", "Which task runs at each step.", kind=SECTION, keys=(
    _v("strategy", "str", "`mix_ratio` (probability proportional to the tasks' `mix_ratio`, PALM), "
       "`temperature` (proportional to data size ** (1 / temperature)) or `annealed` (from proportional "
       "to size towards uniform).", "mix_ratio", choices=STRATEGIES),
    _v("temperature", "float", "Temperature of the `temperature` strategy.", 1.0, minimum=0,
       above_minimum=True),
    _v("step_mode", "str", "`sampled`: one task per step (PALM); `joint`: one batch of every task per step, "
       "losses combined, one optimizer step (see docs/sampling.md).", "sampled", choices=STEP_MODES),
    _v("tasks_per_step", "int", "With `step_mode: joint`: the main task plus this many minus one others, "
       "drawn by `strategy`; `null`: every task.", minimum=1),
))

OPTIMIZER = Key("optimizer", "Optimizer. Other options of the optimizer class (`beta1`, `beta2`, "
                "`epsilon`) may be added too.", kind=SECTION, extra_options=True, keys=(
                    _v("type", "str", "`adamw`, `adam`, `lamb`, or a dotted path to an "
                       "`paddlepalm.optimizer.Optimizer` subclass.", "adamw"),
                    _v("lr", "float", "Peak learning rate.", 5e-5, minimum=0, above_minimum=True),
                    _v("weight_decay", "float", "Decoupled weight decay (never on biases and LayerNorm). "
                       "Default: the optimizer's own (0.01 for `adamw` and `lamb`, 0 for `adam`).", minimum=0),
                    _v("layer_decay", "float", "Layer-wise LR decay: layer k of L gets "
                       "`lr * layer_decay ** (L - k)`; `null` for none.", minimum=0, above_minimum=True,
                       maximum=1),
                    _v("head_lr", "float", "Learning rate of the heads; `null`: `lr`.", minimum=0,
                       above_minimum=True),
                    _v("grad_clip", "float", "Global-norm gradient clipping; `null` for none.", 1.0, minimum=0,
                       above_minimum=True),
                ))

SCHEDULE = Key("schedule", "Learning-rate schedule.", kind=SECTION, keys=(
    _v("type", "str", "`triangular` (warmup, then linear decay to 0), `cosine` (warmup, then cosine), "
       "`constant` (warmup, then constant), `none`, or a dotted path.", "triangular"),
    _v("warmup_steps", "int", "Warmup optimizer steps.", 0, minimum=0),
    _v("warmup_ratio", "float", "Warmup as a fraction of the training steps (instead of `warmup_steps`).",
       minimum=0, maximum=1),
))

# Long inputs (docs/long_text.md): reader and head options whose values are checked like the keys
# above wherever a task's reader or head mapping sets them. Choices mirror the registries in
# paddlepalm.head.pooling (a test keeps them equal).
CHUNK_POOLINGS = ("attention", "max", "mean")
REPRESENTATIONS = ("cls", "concat_layers", "max_layers", "mean_layers", "mean_tokens", "pooled")
LONG_TEXT_READER_OPTIONS = (
    _v("max_chunks", "int", "`classify`/`match` readers: split each document (`text_b` of a pair) into chunks "
       "of `max_len` tokens, at most this many (the rest is cut, with a warning); `null`: one truncated "
       "sequence.", minimum=1),
    _v("chunk_stride", "int", "Pieces between the starts of consecutive chunks (at most `max_len` minus the "
       "special tokens); `null`: no overlap.", minimum=1),
    _v("max_chunks_per_batch", "int", "Encoder rows (chunks or windows) per batch at most: bounds memory at "
       "`max_chunks_per_batch x max_len` tokens; must be >= `max_chunks`.", 64, minimum=1),
    _v("window_stride", "int", "`sequence_label` reader: read inputs in windows of `max_len` tokens starting "
       "this many pieces apart; each word is predicted from the window where it is most central. `null`: "
       "truncate at `max_len`.", minimum=1),
    _v("max_windows", "int", "`sequence_label` reader: windows per input at most (needs `window_stride`).",
       minimum=1),
)
LONG_TEXT_HEAD_OPTIONS = (
    _v("representation", "str", "`classify`/`match` heads: the sentence vector -- `pooled` (the encoder's "
       "pooler), `cls` (last layer [CLS]), `mean_tokens`, or over the last `last_layers` layers' [CLS] "
       "`concat_layers`, `mean_layers`, `max_layers`.", "pooled", choices=REPRESENTATIONS),
    _v("last_layers", "int", "Layers the `*_layers` representations read.", 4, minimum=1),
    _v("chunk_pooling", "str", "How a chunked document's chunk vectors become one: `mean`, `max` or "
       "`attention` (learned, padding chunks masked).", "mean", choices=CHUNK_POOLINGS),
)

DISTILL = Key("distill", "Knowledge distillation: train a smaller student to match "
              "a saved teacher model, every task at once (see docs/distillation.md). The student is what "
              "the run trains and saves; `backbone` is not used to build it.", kind=SECTION, keys=(
                  _v("teacher", "str|mapping", "The saved paddlepalm model (a `train` output or checkpoint "
                     "folder) that has every task, or a mapping task -> folder (or `{path, task}` when the "
                     "task has another name in that model).", required=True, path=True),
                  _v("tasks", "list", "The tasks to distil (default: every task); the others train on their "
                     "labels only, with fresh heads."),
                  Key("student", "The student encoder and heads.", kind=SECTION, keys=(
                      _v("layers", "list", "Initialise from these teacher layers (0-based, e.g. `[0, 2, 4]`): "
                         "embeddings, those layers and the pooler are copied (DistilBERT). Give `layers` or "
                         "`config`."),
                      _v("config", "mapping|str", "A fresh encoder: the keys that differ from the teacher's "
                         "config (`{num_hidden_layers: 2, hidden_size: 256, num_attention_heads: 4}`) or a "
                         "JSON file.", path=True),
                      _v("overrides", "mapping", "Encoder config values to replace that keep shapes, e.g. "
                         "`{hidden_dropout_prob: 0.0}`.", {}),
                      _v("copy_pooler", "bool", "With `layers`: copy the teacher's pooler too.", True),
                      _v("heads", "str", "`copy` the teacher's heads (same hidden size only) or start "
                         "`fresh` ones.", "copy", choices=("copy", "fresh")),
                  )),
                  _v("temperature", "float|mapping", "Softmax temperature of the soft labels: a number or a "
                     "schedule `{start, end, kind: constant/linear/cosine, warmup_steps}`.", 1.0),
                  _v("soft_weight", "float|mapping", "Weight of the soft (teacher) loss; number or schedule.", 0.5),
                  _v("hard_weight", "float|mapping", "Weight of the hard-label loss; number or schedule.", 0.5),
                  _v("kd_loss", "str", "`kl` (KL(teacher || student)) or `soft_ce` (soft cross-entropy).", "kl",
                     choices=("kl", "soft_ce")),
                  _v("scale_by_t2", "bool", "Multiply the soft loss by temperature squared.", True),
                  _v("task_weights", "mapping", "Task -> multiplier of its soft loss.", {}),
                  _v("matches", "list", "Intermediate matches: `{layer_T, layer_S, feature: hidden/attention/"
                     "embeddings, loss: mse/cosine/attention_kl, weight}` (0-based layers; a projection is "
                     "learned when the widths differ).", []),
                  _v("cache", "bool", "Run the teacher once per example and reuse its outputs (never for "
                     "readers with random masking or augmentation).", False),
              ))

SCHEMA = Key("config", "A paddlepalm run.", kind=SECTION, keys=(
    BACKBONE,
    TOKENIZER,
    _v("max_len", "int", "Maximum sequence length in tokens (a task may set its own).", 128, minimum=2),
    _v("batch_size", "int", "Batch size (a task may set its own).", 32, minimum=1),
    TASKS,
    _v("main_task", "str", "The task that sets the length of training (it runs `epochs` epochs) and "
       "the default objective. Default: the first task that is not `aux`."),
    SAMPLING,
    OPTIMIZER,
    SCHEDULE,
    _v("epochs", "float", "Epochs of the main task.", _training_default("num_epochs"), minimum=0, above_minimum=True),
    _v("max_steps", "int", "Stop after this many steps (overrides `epochs`).", minimum=1),
    _v("accumulate_steps", "int", "Gradient accumulation: optimizer step every N batches.",
       _training_default("accumulate_steps"), minimum=1),
    _v("amp", "str", "Mixed precision on GPU: `fp16` or `bf16`; `null` trains in fp32.",
       choices=("fp16", "bf16")),
    _v("eval_steps", "int", "Evaluate every task with a `dev` file every N steps; `null`: at the end "
       "only.", minimum=1),
    _v("objective", "str|mapping", "What `best/` maximises: `task.metric` (e.g. `intent.accuracy`) or a "
       "weighted sum `{intent.accuracy: 0.5, slot.f1: 0.5}`. Default: the main task's first metric."),
    _v("patience", "int", "Stop after this many evaluations without a better objective; `null`: never.",
       minimum=1),
    _v("save_steps", "int", "Save a checkpoint every N steps; `null`: at the end only.", minimum=1),
    _v("keep_last", "int", "Checkpoints kept (the newest); `null` keeps all.", _training_default("keep_last"), minimum=1,
       null_ok=True),
    _v("print_steps", "int", "Log the loss every N steps; 0 for never.", _training_default("print_steps"), minimum=0),
    _v("output_dir", "str", "Where `train` writes (relative to the current folder).", "output"),
    _v("seed", "int", "Seed of initialisation, shuffling, sampling and dropout.", 0),
    Key("balancing", "How the losses of a step's tasks combine into one gradient (docs/balancing.md): "
        "`fixed` (weights: each task's `loss_weight`), `uncertainty`, `dwa`, `gradnorm`, `pcgrad`, `cagrad`, "
        "or a dotted path; with options as a mapping, e.g. `{type: dwa, temperature: 2.0, window: 100}`. "
        "Default: the sum of the losses weighted by `loss_weight`. Most useful with "
        "`sampling.step_mode: joint` or tasks sharing their input.", kind=COMPONENT),
    _v("diagnostics_steps", "int", "With `balancing`: log the cosine similarity of the task gradients on the "
       "shared encoder and each task's weight every N steps (0: never).", _training_default("diagnostics_steps"),
       minimum=0),
    _v("callbacks", "list", "Your own training callbacks, run after the built-in ones: dotted paths "
       "`pkg.module:Class`, or mappings `{type: pkg.module:Class, <constructor options>}` (see "
       "docs/callbacks.md)."),
    DISTILL,
    # speed (issue 19): CPU intra-op threads
    _v("num_threads", "int", "CPU threads for MKL/OpenMP math. `null`: `PADDLEPALM_NUM_THREADS` if set, else "
       "`OMP_NUM_THREADS`/`MKL_NUM_THREADS` as you set them, else the physical cores this process may use "
       "(affinity mask, cgroup CPU quota). The choice is logged and written to `results.json`.", minimum=1),
))


def walk(key: Key = SCHEMA, prefix: str = "") -> Iterator[Tuple[str, Key]]:
    """``(dotted path, key)`` for every key below ``key``; task keys as ``tasks.<name>.<key>``."""
    for child in key.keys:
        path = prefix + child.name
        yield path, child
        if child.kind == SECTION:
            yield from walk(child, path + ".")
        elif child.kind == NAMED:
            yield from walk(child, path + ".<name>.")


def lookup(path: Sequence[str]) -> Optional[Key]:
    """The schema key at a concrete path (``('tasks', 'slot', 'mix_ratio')``), or None."""
    key = SCHEMA
    i = 0
    while i < len(path):
        if key.kind == NAMED:
            i += 1  # the entry name
            if i == len(path):
                return Key(path[-1], "", kind=SECTION, keys=key.keys)
        elif key.kind != SECTION:
            return None
        key = key.child(path[i])
        if key is None:
            return None
        i += 1
    return key


def with_defaults(data: Dict[str, Any], key: Key = SCHEMA) -> Dict[str, Any]:
    """A copy of ``data`` in schema order, every missing key of every section (and task) defaulted."""
    out: Dict[str, Any] = {}
    for child in key.keys:
        value = copy.deepcopy(data.get(child.name, child.default))
        if child.kind == SECTION:
            value = with_defaults(value or {}, child)
        elif child.kind == NAMED:
            value = {name: with_defaults(entry, child) for name, entry in (value or {}).items()}
        out[child.name] = value
    out.update({k: copy.deepcopy(v) for k, v in data.items() if k not in out})  # component options
    return out


# ----------------------------------------------------------------------------- documentation
INTRO = """\
One YAML file declares a whole multi-task run. The command line reads it:

```bash
paddlepalm train config.yaml --set optimizer.lr=3e-5 tasks.slot.mix_ratio=0.5
paddlepalm evaluate config.yaml --ckpt output/best [--split test]
paddlepalm predict config.yaml --ckpt output/best --input new.tsv --output preds.jsonl --task intent
paddlepalm export config.yaml --ckpt output/best --out serving/
paddlepalm check config.yaml          # validate only, print the resolved config
```

* `--set KEY=VALUE` replaces any value; the key is a dotted path (`tasks.slot.head.use_crf=true`) and
  the value is read as YAML (`3e-5`, `true`, `null`, `[a, b]`, `{x: 1}`).
* Relative input paths (`train`, `dev`, `test`, `label_map`, `tokenizer.vocab`, `backbone.pretrained`,
  `backbone.config`) are relative to the config file's folder; `~` and `$VARIABLES` are expanded.
  `output_dir` and `backbone.download_dir` are relative to the current folder.
* The whole file is checked before anything runs: unknown keys (with a suggestion), wrong types,
  out-of-range values, missing files, unknown reader/head/optimizer names, options the reader or head
  does not take, label maps that disagree with `num_classes`, an undeclared `main_task`, objective
  metrics the head does not report, a `max_len` over the encoder's `max_position_embeddings` (the
  default 128 is lowered to it instead)... The data files a reader reads as records (TSV, CSV, JSON
  lines, JSON arrays) are read in full: `file_format` against the content, columns against the
  reader's inputs and `fields`, column counts, nulls, UTF-8, the labels against `label_map`
  (or against the training file's labels), and for sequence labelling one tag per word and the
  tags against `label_map`. Every problem is reported at once, as
  `file:line: key.path: message`; a problem in a data file names the data file, line and field in
  the message.
* Your own reader or head joins by dotted path, `reader: mypkg.readers:MyReader`, or by registering
  it (`paddlepalm.registry.READERS.register('my_reader', MyReader)`).
* A dataset in CSV, TSV or JSON lines needs no code: map the reader's inputs onto the file's columns
  with `fields`.

`train` writes into `output_dir`: `config.resolved.yaml` (this file with every default and inferred
head size filled in), `metrics.jsonl` (losses and evaluations), `ckpt.step<N>/` checkpoints,
`best/` (the best model by `objective`) and `results.json` (the final evaluation,
`{task: {metric: value}}`; a `distill` run adds `teacher`, the teacher's metrics on the same dev
readers, and `retention`, student / teacher of the objective's metric per task). Any of these
folders works as `--ckpt`; a training `output_dir` means its `best/` (else its latest checkpoint).
"""

EXAMPLE = """\
backbone: {type: bert, pretrained: ../models/all-MiniLM-L6-v2}
max_len: 64
batch_size: 32
tasks:
  intent:
    reader: classify
    train: data/intent_train.tsv
    dev: data/intent_dev.tsv
  slot:
    reader: {type: sequence_label, token_sep: "\\x02"}
    head: {type: sequence_label, use_crf: true}
    train: data/slot_train.tsv
    dev: data/slot_dev.tsv
    label_map: data/slot_labels.json
    mix_ratio: 1.0
  mlm:
    reader: {type: mask_lm, mask_prob: 0.15}
    train: data/unlabelled.txt
    file_format: txt
    mix_ratio: 0.2
    aux: true
main_task: intent
optimizer: {type: adamw, lr: 5.0e-5, layer_decay: 0.9}
schedule: {type: triangular, warmup_ratio: 0.1}
epochs: 3
eval_steps: 200
objective: {intent.accuracy: 0.5, slot.f1: 0.5}
output_dir: output/snips
"""


def _type_text(key: Key) -> str:
    if key.kind == SECTION:
        return "section"
    if key.kind == NAMED:
        return "mapping of name -> task"
    if key.kind == COMPONENT:
        return "name or mapping"
    text = " or ".join(TYPE_NAMES[t] for t in key.types)
    if key.choices:
        text += ": " + ", ".join("`%s`" % c for c in key.choices)
    bounds = []
    if key.minimum is not None:
        bounds.append("%s %s" % (">" if key.above_minimum else ">=", _number(key.minimum)))
    if key.maximum is not None:
        bounds.append("<= %s" % _number(key.maximum))
    if bounds:
        text += " (%s)" % ", ".join(bounds)
    if key.null_ok:
        text += " or `null`"
    return text


def _number(x) -> str:
    return ("%g" % x) if isinstance(x, float) else str(x)


def _default_text(key: Key) -> str:
    if key.required:
        return "**required**" + (" unless `%s`" % key.unless if key.unless else "")
    if key.kind != VALUE:
        return ""
    if key.default is None:
        return "`null`"
    if isinstance(key.default, bool):
        return "`%s`" % str(key.default).lower()
    if isinstance(key.default, float):
        return "`%s`" % repr(key.default)
    if key.default == {}:
        return "`{}`"
    return "`%s`" % key.default


def _table(rows: List[Tuple[str, Key]]) -> List[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, key in rows:
        lines.append("| `%s` | %s | %s | %s |" % (path, _type_text(key), _default_text(key),
                                                  key.doc.replace("|", "\\|")))
    return lines


def render_markdown() -> str:
    """The text of ``docs/config.md``."""
    lines = ["# Config file reference", "",
             "<!-- Generated by paddlepalm.config.schema.render_markdown(); edit the schema, not this file. -->",
             "", INTRO, "## Example", "", "```yaml", EXAMPLE.rstrip("\n"), "```", "", "## Top-level keys", ""]
    lines += _table([(k.name, k) for k in SCHEMA.keys])

    def sections(keys, parent):
        for section in keys:
            if section.kind == VALUE:
                continue
            prefix = parent + section.name + (".<name>" if section.kind == NAMED else "")
            lines.extend(["", "## `%s`" % prefix, "", section.doc, ""])
            lines.extend(_table([("%s.%s" % (prefix, k.name), k) for k in section.keys]))
            sections([k for k in section.keys if k.kind == SECTION], prefix + ".")  # nested sections

    sections(SCHEMA.keys, "")
    lines += ["", "## Long inputs: reader and head options", "",
              "Options of `tasks.<name>.reader` and `tasks.<name>.head` mappings, checked like the keys above "
              "(see `docs/long_text.md`).", ""]
    lines += _table([("tasks.<name>.reader.%s" % k.name, k) for k in LONG_TEXT_READER_OPTIONS]
                    + [("tasks.<name>.head.%s" % k.name, k) for k in LONG_TEXT_HEAD_OPTIONS])
    return "\n".join(lines) + "\n"
