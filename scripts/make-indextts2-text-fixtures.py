#!/usr/bin/env python3
"""Golden fixtures for the IndexTTS2 text front end (Rust port). DEV ONLY.

Nothing in CI runs this script: CI only reads what it wrote under
models/tests/fixtures/indextts2/text/. It is independent of
make-indextts2-fixtures.py (no PyTorch model is built; it only imports
indextts.utils.front, sentencepiece and NeMo's text normalisation).

What it does
  1. Trains two small SentencePiece BPE models on a corpus assembled below
     (English and Chinese sentences written here, plus the first common
     characters of NeMo's zh charset list), pre-tokenised the way the
     reference feeds text to its model (tokenize_by_CJK_char: upper case,
     CJK characters spaced):
       bpe_nfkc.model  model_type=bpe, the default nmt_nfkc normaliser
                       (as the official bpe.model is assumed to use),
                       character_coverage 0.9995 (rare characters -> <unk>);
       bpe_bytes.model model_type=bpe, byte_fallback, identity normaliser,
                       user-defined pieces "<H>" and "GPT", a control piece;
       unigram.model   a unigram model, which the Rust reader must refuse.
  2. Records, with the reference (indextts2-inference 2.1.1,
     indextts/utils/front.py) as infer_v2 sets it up
     (TextNormalizer(enable_glossary=True), TextTokenizer, split_segments):
     for ~100 varied strings the normalised text, the input NeMo received and
     what it returned, the CJK pre-tokenised text, the tokens (str and int)
     with both models and the segments for max_text_tokens_per_segment 120
     and 20 (ids as convert_tokens_to_ids gives them; segments with
     bpe_nfkc.model only). A few strings again
     with a small glossary.
  3. Records SentencePiece alone (Encode, out_type str and int) on strings
     that exercise its normaliser (NFKC, whitespace runs, control and
     unknown characters, user-defined pieces, byte fallback).
  4. Records split_segments_by_token on seeded random token sequences
     (commas, dashes, quotes, stops) for several limits.
  5. Records NeMo's normalisation (English and Chinese, input_case="cased",
     the reference's settings) of a corpus of number sentences, the
     comparison set for the Rust verbaliser.

Venv (outside the repository, never committed, never needed by CI): the
one of make-indextts2-fixtures.py; this script needs only
  sentencepiece==0.2.1 nemo-text-processing==1.1.0 (pynini 2.1.6)
  indextts2-inference==2.1.1 (--no-deps)
Python's string hashing decides the order in which the reference replaces
pinyin and names (list(set(...))); the script re-runs itself with
PYTHONHASHSEED=0 so that the fixtures are reproducible.

Run (from the repository root, ~10 s once NeMo's grammars are cached):
  /work/itts-venv/bin/python scripts/make-indextts2-text-fixtures.py
  Option: --out (default models/tests/fixtures/indextts2/text).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

import sentencepiece as spm  # noqa: E402
import nemo_text_processing  # noqa: E402
from indextts.utils.common import tokenize_by_CJK_char  # noqa: E402
from indextts.utils.front import TextNormalizer, TextTokenizer  # noqa: E402

VERSIONS = {"sentencepiece": spm.__version__, "nemo_text_processing": importlib.metadata.version("nemo_text_processing"),
            "indextts2-inference": "2.1.1"}

EN_CORPUS = """
The quick brown fox jumps over the lazy dog.
She sells sea shells by the sea shore, and the shells she sells are surely sea shells.
How much wood would a woodchuck chuck if a woodchuck could chuck wood?
I think, therefore I am. To be or not to be, that is the question.
It was the best of times, it was the worst of times, it was the age of wisdom.
All happy families are alike; each unhappy family is unhappy in its own way.
Call me Ishmael. Some years ago, never mind how long precisely, I went to sea.
In the beginning the universe was created. This has made a lot of people very angry.
The speech synthesis system reads text aloud with a natural voice and clear rhythm.
Please open the window, because the room is getting warm and the air is heavy.
We will meet at the station at seven o'clock, then take the train to the city.
My favourite colours are blue, green and yellow; my sister prefers red and purple.
Artificial intelligence is changing how we work, learn, travel and communicate.
Would you like a cup of tea or coffee? Yes, please, with a little milk.
Three hundred and sixty five days make a year, and twelve months make it too.
Numbers such as one, two, three, four, five, six, seven, eight, nine and ten.
Twenty, thirty, forty, fifty, sixty, seventy, eighty, ninety, hundred, thousand, million.
First, second, third, fourth, fifth, percent, dollars, cents, point, minus, zero.
The weather today is sunny with a gentle breeze from the west and no rain at all.
Don't worry, be happy! What's the matter? Where's the station? Who's there?
He said, "Let's go!" and she replied, 'Not yet.' They laughed - and left.
Scientists discovered a new species of frog in the rain forest last summer.
The model generates speech tokens, then the vocoder turns them into a waveform.
Email me at hello at example dot com, or call the office during the day.
Good morning, everyone. Today we will talk about machine learning and voices.
Reading books every night helps children build vocabulary and imagination.
The train was late again, so we walked home through the quiet streets.
Music, art and literature make our lives richer and more meaningful.
Fish Speech, Cosy Voice and Index TTS are open source speech projects.
Version five nano is small; version four is larger; both are very fast.
"""

ZH_CORPUS = """
今天天气很好，我们一起去公园散步吧。
人工智能正在改变我们的工作和生活方式。
他说：“明天见！”然后就走了。
这本书一共有三百二十五页，我已经读了一半。
请把窗户打开，房间里太热了。
我喜欢听音乐、看电影和读小说。
北京是中国的首都，上海是一个国际化的大城市。
语音合成系统可以把文字转换成自然流畅的声音。
学习一门新的语言需要时间和耐心。
春天来了，花开了，鸟儿在树上唱歌。
克里斯托弗·诺兰是一位著名的电影导演。
约瑟夫·高登-莱维特也是一位演员。
我们的会议在下午三点开始，请大家准时参加。
这个模型的参数量是五亿，训练用了两千小时的数据。
百分之五十的人认为这个方法很有效。
负五度的天气非常寒冷，出门要多穿衣服。
一二三四五六七八九十百千万亿零两点
他的电话号码是一三八零零一三八零零零。
你好，世界！欢迎使用语音合成。
小明和小红是好朋友，他们每天一起上学。
中文和英文混合的句子也很常见，比如 Hello 世界。
"""


def corpus_lines() -> list[str]:
    lines = [l.strip() for l in (EN_CORPUS + ZH_CORPUS).splitlines() if l.strip()]
    charset = Path(nemo_text_processing.__file__).parent / "text_normalization/zh/data/char/charset_national_standard_2013_8105.tsv"
    chars = [l.split("\t")[0].strip() for l in charset.read_text(encoding="utf-8").splitlines()][:600]
    # Common characters a few times each (kept by the coverage), in lines of 30.
    for rep in range(3):
        for i in range(0, len(chars), 30):
            lines.append("".join(chars[i : i + 30]))
    return [tokenize_by_CJK_char(l) for l in lines]


def train(workdir: Path, out: Path) -> dict[str, Path]:
    text = workdir / "corpus.txt"
    text.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    models = {}
    common = dict(input=str(text), model_type="bpe", num_threads=1, minloglevel=2, shuffle_input_sentence=False)
    spm.SentencePieceTrainer.train(model_prefix=str(workdir / "bpe_nfkc"), vocab_size=1200, hard_vocab_limit=False,
                                   character_coverage=0.9995, **common)
    spm.SentencePieceTrainer.train(model_prefix=str(workdir / "bpe_bytes"), vocab_size=1100, hard_vocab_limit=False,
                                   character_coverage=0.995, byte_fallback=True, normalization_rule_name="identity",
                                   user_defined_symbols=["<H>", "GPT"], control_symbols=["<ctrl>"], **common)
    # Not BPE: the Rust reader must refuse it.
    english = workdir / "english.txt"
    english.write_text(EN_CORPUS.upper(), encoding="utf-8")
    spm.SentencePieceTrainer.train(model_prefix=str(workdir / "unigram"), vocab_size=100, model_type="unigram",
                                   hard_vocab_limit=False, normalization_rule_name="identity", input=str(english),
                                   num_threads=1, minloglevel=2)
    (out / "unigram.model").write_bytes((workdir / "unigram.model").read_bytes())
    for name in ("bpe_nfkc", "bpe_bytes"):
        dst = out / f"{name}.model"
        dst.write_bytes((workdir / f"{name}.model").read_bytes())
        models[name] = dst
    return models


# Strings for the whole front end: (category, text).
FRONT_END = [
    ("empty", ""),
    ("single", "a"),
    ("single", "你"),
    ("single", " x "),
    ("single", "!"),
    ("single", "😀"),
    ("whitespace", "   "),
    ("whitespace", "Hello    world,\tthis  is\n a   test."),
    ("whitespace", "  你好  世界  "),
    ("en", "Hello world."),
    ("en", "The quick brown fox jumps over the lazy dog."),
    ("en", "Don't worry, be happy! What's the matter? Where's the station?"),
    ("en", "It's a test, and that's fine; this's odd. He's here: she's not."),
    ("en", "Would you like a cup of tea or coffee? Yes, please."),
    ("en", "He said \"Let's go!\" and she replied 'Not yet.'"),
    ("en", "Wait... what?! No way..."),
    ("en", "Music, art and literature make our lives richer."),
    ("en", "Please open the window - the room is warm."),
    ("en", "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of light, it was the season of darkness."),
    ("en_numbers", "I have 3 apples and 25 pears."),
    ("en_numbers", "The answer is 42."),
    ("en_numbers", "She is 7, he is 19 and their father is 100."),
    ("en_numbers", "Pi is about 3.14 and e is 2.718."),
    ("en_numbers", "It is -5 degrees outside, or -0.5 inside."),
    ("en_numbers", "The 1st, 2nd, 3rd and 11th runners won."),
    ("en_numbers", "About 50% of the 21st century is left."),
    ("en_numbers", "It costs $5 or $3.50, not $1."),
    ("en_numbers", "There were 1,250 people and 12,000,000 ants."),
    ("en_numbers", "Room 999 is next to room 105."),
    ("en_numbers", "In 1990 and 2024 things changed."),
    ("en_numbers", "Call 555-1234 at 3:30."),
    ("en_abbrev", "Dr. Smith and Mr. Jones live on Elm St."),
    ("en_abbrev", "World War II ended; e.g. this is an example."),
    ("en_abbrev", "x = y + 2"),
    ("tech", "GPT-5-nano and F5-TTS are models."),
    ("tech", "Fish-Speech and CosyVoice-2 are open source."),
    ("tech", "我喜欢用GPT-5-nano和Fish-Speech。"),
    ("tech", "COVID-19 changed the world."),
    ("email", "abc@example.com"),
    ("email", "contact123@mail.org"),
    ("email", "send it to abc@example.com please"),
    ("pinyin", "xuan4 ze2"),
    ("pinyin", "我们一起去jve2定吧，ying1 gai1 可以"),
    ("pinyin", "Beta1 and voice2 are not pinyin, but shang5 is."),
    ("pinyin", "qu4 xue2 xu1 lv4"),
    ("pinyin", "ZHONG1 GUO2"),
    ("zh", "今天天气很好，我们一起去公园散步吧。"),
    ("zh", "他说：“明天见！”然后就走了。"),
    ("zh", "我喜欢听音乐、看电影和读小说；你呢？"),
    ("zh", "《红楼梦》是一本书（很长）【注】「引用」"),
    ("zh", "真的吗……太好了～"),
    ("zh", "你好，，，世界"),
    ("zh", "春天来了，花开了，鸟儿在树上唱歌。"),
    ("zh", "北京是中国的首都，上海是一个国际化的大城市，广州和深圳也是非常重要的城市，这些城市每年都吸引了大量的游客和工作者，他们在这里学习、工作和生活，为城市的发展做出了贡献。"),
    ("zh_numbers", "这本书一共有325页。"),
    ("zh_numbers", "我有3个苹果和12个梨。"),
    ("zh_numbers", "温度是-5度，湿度是50%。"),
    ("zh_numbers", "圆周率约等于3.14。"),
    ("zh_numbers", "参数量是500000000，数据有2000小时。"),
    ("zh_numbers", "第1名和第2名相差0.5分。"),
    ("zh_numbers", "有10个人，110个人，1010个人，10010个人。"),
    ("zh_numbers", "他出生于2000年1月1日。"),
    ("zh_numbers", "价格是$5，电话135-4567-8900。"),
    ("zh_numbers", "现在是12:30，比例是1/4。"),
    ("names", "克里斯托弗·诺兰是一位著名的电影导演。"),
    ("names", "约瑟夫·高登-莱维特和克里斯托弗·诺兰合作过。"),
    ("mixed", "中文和英文混合的句子也很常见，比如 Hello 世界。"),
    ("mixed", "我用iPhone15拍照，效果很好。"),
    ("mixed", "IndexTTS2是一个语音合成模型。It is good."),
    ("mixed", "Hello，世界！How are you？"),
    ("quotes", "\"Hello,\" she said. (Really?) [Yes!]"),
    ("quotes", "“引号”和‘单引号’以及（括号）"),
    ("punct", "A; B: C... D,,, E—F ~ G"),
    ("punct", "Hello!!! Are you there??? Yes."),
    ("unknown", "I love 😀 and 🎉 emojis!"),
    ("unknown", "Ça va? Über naïve café."),
    ("unknown", "Привет мир"),
    ("unknown", "こんにちは世界"),
    ("unknown", "안녕하세요"),
    ("unknown", "ＦＵＬＬ　ｗｉｄｔｈ　１２３"),
    ("long", "This is a very long sentence without any commas that goes on and on and on about nothing in particular just to make sure that the segmenter has to split it by length because there is no punctuation to split it at all and it keeps going further and further until it is much longer than twenty tokens and maybe even longer than one hundred and twenty tokens if we keep writing for a while longer like this without stopping at all for any reason whatsoever."),
    ("long", "First part, second part, third part, fourth part, fifth part, sixth part, seventh part, eighth part, ninth part, tenth part."),
    ("long", "One - two - three - four - five - six - seven - eight - nine - ten - eleven - twelve."),
    ("long", "Short. Another short one. Yet another! And a question? Then 'quoted' text. End."),
    ("long", "我们的会议在下午三点开始，请大家准时参加，会议的内容包括项目的进展、下一阶段的计划、预算的调整以及人员的安排，希望每个人都能提前准备好自己的材料，会议结束后我们会一起吃晚饭。"),
    ("long", "语音合成系统可以把文字转换成自然流畅的声音语音合成系统可以把文字转换成自然流畅的声音语音合成系统可以把文字转换成自然流畅的声音语音合成系统可以把文字转换成自然流畅的声音"),
    ("long", "He said 'yes.' Then she said 'no.' And they left. 'Why?' nobody asked."),
    ("segments", "a, b, c, d. e - f - g! h? i."),
    ("segments", "Hi. 'Quoted.' Next."),
    ("segments", "你好。'引用'。再见！"),
    ("segments", "One, two; three: four. Five - six."),
]

GLOSSARY = {"C++": {"en": "C plus plus", "zh": "C 加加"}, "TTS": "T T S", "M.2": {"en": "M dot two", "zh": "M 二"},
            "Inc.": {"en": "Ink"}}
GLOSSARY_STRINGS = ["I write C++ and c++ code.", "我用C++写TTS程序。", "An M.2 drive from Acme Inc. is fast.",
                    "M.2固态硬盘", "No glossary terms here."]

SP_ONLY = [
    "", " ", "HELLO WORLD", "hello world", "Hello World", "  leading and trailing  ", "tabs\tand\nnewlines\r\n",
    "multiple     spaces", "ＦＵＬＬ１２３", "ﬁne ﬂow", "① ② ③", "ｶﾀｶﾅ", "e\u0301te\u0301", "\u00e9t\u00e9",
    "zero\u200bwidth", "soft\u00adhyphen", "non\u00a0breaking", "ideographic\u3000space", "\x01control\x7f",
    "你 好 世 界", "你好世界", "😀", "😀😀 x 😀", "Привет", "<H> GPT GPTGPT <ctrl> <s> </s> <unk>",
    "GPT<H>5<H>NANO", "A,B.C!D?E", "▁ALREADY▁ESCAPED", "x", "  x", "ÀÉÎÕÜ", "™ ℃ ㎏ ½", "…", "«quoted»",
    "ALL CAPS TEXT WITH NUMBERS 123 456", "中 文 和 ENGLISH 混 合",
]

EN_NUM = [
    "0", "7", "10", "13", "20", "21", "99", "100", "101", "110", "115", "342", "999", "05", "007", "10000", "123456",
    "1,000", "1,001", "12,345", "100,000", "1,000,000", "2,500,000", "3.14", "0.5", "10.25", "100.01", "-1", "-42",
    "-0.5", "-3.75", "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "100th", "101st",
    "111th", "5%", "50%", "100%", "2.5%", "-5%", "$1", "$5", "$100", "$1.00", "$3.50", "$3.5", "$0.99", "$12.01",
    "$1,000", "I have 3 cats.", "It is 42, not 43!", "She is 7 and he is 19.", "It costs $5 today.",
    "About 50% of people.", "The 21st century.", "It was -5 degrees.", "Pi is 3.14 and e is 2.718.",
    "There are 1,250 people.", "Room 105, please.", "Hello world.", "Hello   world !", "Yes , no .",
    "He said, \"Yes!\"", "It's fine, isn't it?", "Fish<H>Speech is good.", "Wait... what?!", "A B C",
    "Numbers 1 2 3 and 4.", "1 and 2 and 3", "I came 1st, you came 2nd.",
]

ZH_NUM = [
    "0", "5", "10", "12", "15", "20", "22", "100", "105", "110", "115", "200", "222", "1000", "1010", "2000", "2345",
    "10000", "10010", "12000", "12345", "20000", "22222", "100000", "100010", "102000", "110000", "120000",
    "200000", "1000001", "1002000", "2000000", "20000000", "100000000", "200000000", "300000002", "2000000000",
    "09", "0123", "3.14", "0.05", "10.25", "2.0", "-3", "-12.5", "5%", "25%", "100%", "3.5%", "0.5%", "-5%",
    "我有3个苹果", "共15人", "第1名和第2名", "温度是-5度", "湿度是50%", "价格是12.5元", "一共有1000000000个",
    "55万人", "1.5万", "20世纪", "3月15日", "下午3点", "他今年30岁。", "有-3个", "iPhone15", "V2", "第20",
    "我们  有  空格", "  前后  ", "你好，世界！", "<pinyin_a>和<n_a>", "GPT<H>5<H>nano很好", "约瑟夫·高登",
    "“引号”（括号）", "1、2、3", "12,345人", "2000年", "15号", "8:00", "1/4", "5kg", "$5", "5-3",
]


def nemo_recorder(normalizer: TextNormalizer):
    calls = []
    for lang, nemo in normalizer._normalizers.items():
        original = nemo.normalize

        def wrapped(text, *args, _orig=original, _lang=lang, **kwargs):
            out = _orig(text, *args, **kwargs)
            calls.append({"lang": _lang, "input": text, "output": out})
            return out

        nemo.normalize = wrapped
    return calls


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "models/tests/fixtures/indextts2/text")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # A fixed directory: the trainer records its input path in the model.
    work = Path(tempfile.gettempdir()) / "indextts2-text-fixtures"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    models = train(work, args.out)
    shutil.rmtree(work)

    normalizer = TextNormalizer(enable_glossary=True)
    normalizer.load()
    calls = nemo_recorder(normalizer)
    tokenizers = {name: TextTokenizer(str(path), normalizer) for name, path in models.items()}
    processors = {name: spm.SentencePieceProcessor(model_file=str(path)) for name, path in models.items()}

    front = []
    for category, text in FRONT_END:
        calls.clear()
        normalized = normalizer.normalize(text) if text else ""
        nemo = list(calls)
        entry = {"category": category, "text": text, "normalized": normalized, "nemo": nemo,
                 "cjk": tokenize_by_CJK_char(normalized), "models": {}}
        for name, tok in tokenizers.items():
            tokens = tok.tokenize(text)
            ids = tok.encode(text)
            segs = {}
            # Segments with the main model only (the segmenter does not look at ids).
            for limit in (120, 20) if name == "bpe_nfkc" else ():
                segments = tok.split_segments(tokens, limit)
                segs[str(limit)] = {"tokens": segments, "ids": [tok.convert_tokens_to_ids(s) for s in segments]}
            entry["models"][name] = {"tokens": tokens, "ids": ids, "segments": segs}
        front.append(entry)

    glossary_norm = TextNormalizer(enable_glossary=True)
    glossary_norm._normalizers = normalizer._normalizers
    glossary_norm.load_glossary(GLOSSARY)
    calls.clear()
    glossary = {"glossary": GLOSSARY, "cases": []}
    for text in GLOSSARY_STRINGS:
        calls.clear()
        glossary["cases"].append({"text": text, "normalized": glossary_norm.normalize(text), "nemo": list(calls)})

    sp_only = {name: [{"text": t, "pieces": p.Encode(t, out_type=str), "ids": p.Encode(t, out_type=int)} for t in SP_ONLY]
               for name, p in processors.items()}
    vocab = {name: {"vocab_size": p.GetPieceSize(), "unk_id": p.unk_id(), "bos_id": p.bos_id(), "eos_id": p.eos_id(),
                    "pad_id": p.pad_id(), "pieces": [p.IdToPiece(i) for i in range(p.GetPieceSize())]}
             for name, p in processors.items()}

    rng = random.Random(20250917)
    alphabet = ["A", "B", "▁C", ",", "▁,", "-", ".", "!", "?", "▁.", "▁?", "▁...", "'", "▁'", "▁!"]
    weights = [6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    split = []
    for case in range(240):
        n = rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 34, 55])
        tokens = rng.choices(alphabet, weights=weights, k=n)
        limit = rng.choice([1, 2, 3, 5, 8, 13, 20, 120])
        quick = rng.choice([0, 0, 3, 10])
        split.append({"tokens": tokens, "max": limit, "quick": quick,
                      "segments": TextTokenizer.split_segments_by_token(
                          tokens, TextTokenizer.punctuation_marks_tokens, limit, quick_streaming_tokens=quick)})

    nemo_corpus = {"en": [], "zh": []}
    for lang, corpus in (("en", EN_NUM), ("zh", ZH_NUM)):
        for text in corpus:
            nemo_corpus[lang].append({"input": text, "output": normalizer._normalizers[lang].normalize(text)})

    golden = {"versions": VERSIONS, "split_tokens": TextTokenizer.punctuation_marks_tokens, "vocab": vocab,
              "front_end": front, "glossary": glossary, "sentencepiece": sp_only, "split": split, "nemo": nemo_corpus}
    (args.out / "golden.json").write_text(json.dumps(golden, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(front)} front-end strings, {len(split)} split cases, "
          f"{sum(len(v) for v in nemo_corpus.values())} NeMo sentences")


if __name__ == "__main__":
    main()
