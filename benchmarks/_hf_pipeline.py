"""The Hugging Face transformers + PyTorch eager pipeline of a trained paddlepalm SNIPS model.

The same trained weights (encoder converted back to Hugging Face names, the intent classifier and
the slot CRF), the model's own Hugging Face tokenizer (the MiniLM package's, the one paddlepalm
converted from), and the same decoding (CRF Viterbi in numpy): what a user running that model
with transformers + PyTorch would do. :func:`check_against` asserts that it gives paddlepalm's
logits before anything is timed, so the comparison is like for like.
"""
import re
from typing import Dict, List

import numpy as np


def _hf_state_from_palm(backbone, hf_keys: List[str]) -> Dict[str, np.ndarray]:
    """paddlepalm encoder parameters under Hugging Face BertModel names (Linear weights transposed)."""
    from paddlepalm.backbone.weights import _HF_RULES  # the HF -> paddlepalm renames, used backwards

    palm = {k: v.numpy() for k, v in backbone.state_dict().items()}
    rules = [(re.compile(p), r) for p, r in _HF_RULES]
    out = {}
    for key in hf_keys:
        for pattern, repl in rules:
            if pattern.match(key):
                name = pattern.sub(repl, key)
                value = palm[name]
                out[key] = np.ascontiguousarray(value.T) if value.ndim == 2 and not name.startswith(
                    "embeddings.") else value
                break
    return out


class HFPipeline:
    """``predict(task, texts)`` for the ``intent`` (classify) and ``slot`` (CRF) tasks of a palm model."""

    def __init__(self, palm_model, hf_dir: str, threads: int):
        import torch
        import transformers

        torch.set_num_threads(threads)
        self.torch = torch
        config = transformers.BertConfig.from_pretrained(hf_dir)
        self.bert = transformers.BertModel(config, add_pooling_layer=True).eval()
        state = _hf_state_from_palm(palm_model.backbone, list(self.bert.state_dict()))
        missing, unexpected = self.bert.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()},
                                                        strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError("weights did not map: missing %s, unexpected %s" % (missing, unexpected))
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir, use_fast=True)
        self.max_len = {t: palm_model.readers[t].max_len for t in palm_model.tasks}
        self.labels = {t: palm_model.readers[t].label_vocab() for t in palm_model.tasks}
        intent, slot = palm_model.heads["intent"], palm_model.heads["slot"]
        self.intent_w = torch.from_numpy(intent.classifier.weight.numpy())  # [in, out]
        self.intent_b = torch.from_numpy(intent.classifier.bias.numpy())
        self.slot_w = torch.from_numpy(slot.classifier.weight.numpy())
        self.slot_b = torch.from_numpy(slot.classifier.bias.numpy())
        self.crf = [slot.crf.transitions.numpy(), slot.crf.start.numpy(), slot.crf.end.numpy()]

    def intent_logits(self, texts: List[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_len["intent"],
                             return_tensors="pt")
        with self.torch.inference_mode():
            pooled = self.bert(**enc).pooler_output
            return (pooled @ self.intent_w + self.intent_b).numpy()

    def slot_logits(self, texts: List[str]):
        words = [t.split() for t in texts]
        enc = self.tokenizer(words, is_split_into_words=True, padding=True, truncation=True,
                             max_length=self.max_len["slot"], return_tensors="pt")
        starts, counts = [], []
        for row in range(len(words)):
            seen, first = set(), []
            for pos, w in enumerate(enc.word_ids(row)):
                if w is not None and w not in seen:
                    seen.add(w)
                    first.append(pos)
            starts.append(first)
            counts.append(len(first))
        width = max(1, max(counts))
        index = np.zeros((len(words), width), dtype=np.int64)
        for row, first in enumerate(starts):
            index[row, :len(first)] = first
        with self.torch.inference_mode():
            hidden = self.bert(**enc).last_hidden_state
            gathered = self.torch.gather(hidden, 1, self.torch.from_numpy(index).unsqueeze(-1).expand(
                -1, -1, hidden.shape[-1]))
            logits = (gathered @ self.slot_w + self.slot_b).numpy()
        return logits, np.array(counts), words

    def predict(self, task: str, texts: List[str]) -> List[dict]:
        from paddlepalm.head.crf import viterbi_decode

        if task == "intent":
            logits = self.intent_logits(texts)
            names = self.labels["intent"]
            return [{"index": i, "label": int(k), "label_name": names[int(k)]}
                    for i, k in enumerate(logits.argmax(-1))]
        logits, counts, words = self.slot_logits(texts)
        paths = viterbi_decode(logits, np.maximum(counts, 1), *self.crf)
        names = self.labels["slot"]
        return [{"index": i, "words": w, "labels": [names[k] for k in p[:n]] + ["O"] * (len(w) - n)}
                for i, (w, p, n) in enumerate(zip(words, paths, counts))]


def check_against(pipeline: HFPipeline, palm_model, intent_texts: List[str], slot_texts: List[str]) -> float:
    """Max |logit difference| to paddlepalm's dygraph on some texts (raises above 1e-3)."""
    worst = 0.0
    for task, texts, hf in (("intent", intent_texts, pipeline.intent_logits(intent_texts)),
                            ("slot", slot_texts, pipeline.slot_logits(slot_texts)[0])):
        reader = palm_model.readers[task].clone("predict")
        getattr(reader, "reader", reader).split_cost_tokens = None  # one batch of all the texts
        reader.load_examples(reader.make_examples(texts), len(texts))
        batch = next(iter(reader.iterator(num_epochs=1)))
        from paddlepalm.engine.inference import infer_outputs

        ours = infer_outputs(palm_model.backbone, palm_model.heads[task], batch)["logits"]
        order = np.argsort(batch["feature_index"])
        ours = ours[order]
        if task == "slot":
            hf = hf[:, :ours.shape[1]]
            mask = np.arange(ours.shape[1])[None, :] < batch["num_words"][order][:, None]
            diff = np.abs(np.where(mask[..., None], ours - hf, 0)).max()
        else:
            diff = np.abs(ours - hf).max()
        if diff > 1e-3:
            raise RuntimeError("HF pipeline differs from paddlepalm on %s: max |logit diff| %.2e" % (task, diff))
        worst = max(worst, float(diff))
    return worst
