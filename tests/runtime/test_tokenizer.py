from transformers import CLIPTokenizer

from t2vrt.manifest import load_manifest
from t2vrt.runtime.tokenizer import ClipTokenizer

PROMPTS = [
    "",
    "A photo of an Astronaut   riding a horse on Mars!!",
    "héllo wörld café 東京 🙂 don't stop 123 4567",
    " ".join(["spiderman is surfing"] * 40),  # longer than 77 tokens: truncated, end token kept
    "\tnew\nlines and  spaces ",
]


def test_same_ids_as_diffusers_tokenizer(tiny_model, tiny_engines):
    ref = CLIPTokenizer.from_pretrained(tiny_model / "tokenizer")
    ours = ClipTokenizer(tiny_engines, load_manifest(tiny_engines).tokenizer)
    got = ours(PROMPTS)
    want = ref(PROMPTS, padding="max_length", max_length=77, truncation=True).input_ids
    assert got.shape == (len(PROMPTS), 77)
    assert got.tolist() == want
    assert got[0, 2] == ref.pad_token_id == ref.convert_tokens_to_ids("!")  # the model's pad token, not end-of-text
    assert got[3, -1] == ref.eos_token_id


def test_truncation_warns(tiny_engines, caplog):
    ours = ClipTokenizer(tiny_engines, load_manifest(tiny_engines).tokenizer)
    ours([PROMPTS[3]])
    assert "truncated" in caplog.text
