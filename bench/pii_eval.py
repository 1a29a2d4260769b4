"""Recall, precision and throughput of the local PII detector on a synthetic banking corpus.

Run from the repo root:  .venv/bin/python bench/pii_eval.py  [--mb 6] [--seed 1234]

The corpus is deterministic (Faker.seed + random.Random with the same seed): English filler
sentences and number-heavy business chatter (amounts, dates, order ids, versions, times), with
planted entities (cards of several networks and formats, IBANs of six countries compact and
grouped, ABA routing numbers, SWIFT codes, SSNs, emails, phones, IPs, AWS keys and the
context-anchored types) and hard negatives (one digit changed in a card, IBAN or routing number;
SSNs in forbidden ranges; order ids, dates, amounts, versions, ISBNs).

Matching: a detection is a true positive when its type AND span equal a planted entity's exactly.
Any other detection is a false positive for its type (so a right type with a wrong span costs both
recall and precision). A detection that overlaps a hard negative is also counted per negative kind.
Throughput: detect() over every document (2-4 KB each, like prompts), one core, CPU time, median
of 3 runs; on the PII-dense eval corpus (the one the target is checked on) and on a sparse one.

Disguised corpus (issue 8): the same generator, with every planted card, IBAN, routing number,
SSN, email and phone, and every checksum-invalid hard negative, written the way an attacker or a
copy-paste would: separators of any kind, digits of other scripts, invisible characters inside,
lower-case IBANs, full-width "@" and look-alike letters in email domains. Scored the same way, on
spans of the original text, and on its own throughput.
"""
from __future__ import annotations

import argparse
from datetime import datetime
import random
import statistics
import string
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faker import Faker  # noqa: E402

from chalicelib.pii.local import LocalPiiDetector  # noqa: E402

TARGET_RECALL = ("CREDIT_DEBIT_NUMBER", "INTERNATIONAL_BANK_ACCOUNT_NUMBER", "BANK_ROUTING", "SSN", "EMAIL")
IBAN_LOCALES = ("de_DE", "fr_FR", "en_GB", "es_ES", "it_IT", "nl_NL")
PHONE_LOCALES = ("en_US", "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "nl_NL")
CARD_PROVIDERS = ("visa16", "visa19", "visa13", "mastercard", "amex", "discover", "diners", "jcb15", "jcb16")
GROUPING = {13: (4, 3, 3, 3), 14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}

T0, T1 = datetime(2015, 1, 1), datetime(2034, 12, 31)
Piece = tuple[str, str | None]  # (text, planted type | None | "NEG:<kind>")


class Corpus:
    def __init__(self, seed: int) -> None:
        Faker.seed(seed)
        self.rnd = random.Random(seed)
        self.fk = {loc: Faker(loc) for loc in sorted({"en_US", *IBAN_LOCALES, *PHONE_LOCALES})}
        self.en = self.fk["en_US"]

    # -- helpers --------------------------------------------------------------------------------
    def pick(self, seq):  # type: ignore[no-untyped-def]
        return seq[self.rnd.randrange(len(seq))]

    def group(self, digits: str, sizes: tuple[int, ...], sep: str) -> str:
        out, i = [], 0
        for n in sizes:
            out.append(digits[i : i + n])
            i += n
        return sep.join(out)

    def card(self) -> str:
        return self.en.credit_card_number(self.pick(CARD_PROVIDERS))

    def fmt_card(self, digits: str) -> str:
        style = self.rnd.random()
        if style < 0.4:
            return digits
        return self.group(digits, GROUPING[len(digits)], " " if style < 0.75 else "-")

    def iban(self) -> str:
        return self.fk[self.pick(IBAN_LOCALES)].iban()

    def fmt_iban(self, iban: str) -> str:
        return iban if self.rnd.random() < 0.5 else " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))

    def alter(self, s: str) -> str:
        """Change one digit (not the IBAN country/check prefix letters) to another digit."""
        idx = [i for i, c in enumerate(s) if c.isdigit()]
        i = self.pick(idx)
        new = self.pick([d for d in string.digits if d != s[i]])
        return s[:i] + new + s[i + 1 :]

    def key(self, alphabet: str, n: int) -> str:
        return "".join(self.rnd.choice(alphabet) for _ in range(n))

    # -- disguises (issue 8) --------------------------------------------------------------------
    def disguise(self, value: str, tag: str) -> str:
        kind = DISGUISED_TAGS.get(tag)
        if kind is None:
            return value
        r = self.rnd
        if kind == "email":
            local, domain = value.split("@")
            domain = "".join(HOMOGLYPHS.get(c, c) if r.random() < 0.3 else c for c in domain)
            value = local + self.pick(["@", "\uff20"]) + domain
        else:
            seps = {"card": CARD_SEPS, "iban": IBAN_SEPS, "ssn": SSN_SEPS, "phone": PHONE_SEPS, "aba": [""]}[kind]
            value = "".join(self.pick(seps) if c in " -" and kind != "aba" else c for c in value)
            if kind == "iban" and r.random() < 0.5:
                value = value.lower()
            if kind != "phone":
                zero = self.pick(DIGIT_ZEROS)
                value = "".join(chr(zero + int(c)) if c.isdigit() and r.random() < 0.5 else c for c in value)
        for _ in range(r.randrange(3)):  # invisible characters strictly inside
            at = r.randrange(1, len(value))
            value = value[:at] + self.pick(INVISIBLE) + value[at:]
        return value

    # -- sentences: lists of pieces, planted values tagged with their type ----------------------
    def positive(self) -> list[Piece]:
        r, en = self.rnd, self.en
        kind = self.pick(POS_KINDS)
        if kind == "card":
            v = self.fmt_card(self.card())
            return self.pick([[("Please charge card ", None), (v, "CREDIT_DEBIT_NUMBER"), (" for the invoice.", None)],
                              [("My Visa is ", None), (v, "CREDIT_DEBIT_NUMBER"), (", thanks", None)],
                              [("Card: ", None), (v, "CREDIT_DEBIT_NUMBER")],
                              [("refund to ", None), (v, "CREDIT_DEBIT_NUMBER"), (" please.", None)]])
        if kind == "iban":
            v = self.fmt_iban(self.iban())
            return self.pick([[("Send the funds to IBAN ", None), (v, "INTERNATIONAL_BANK_ACCOUNT_NUMBER"), (".", None)],
                              [("Beneficiary account: ", None), (v, "INTERNATIONAL_BANK_ACCOUNT_NUMBER")],
                              [("pay ", None), (v, "INTERNATIONAL_BANK_ACCOUNT_NUMBER"), (" by Friday", None)]])
        if kind == "aba":
            v = en.aba()
            return self.pick([[("Routing number ", None), (v, "BANK_ROUTING"), (" is for our branch.", None)],
                              [("ABA: ", None), (v, "BANK_ROUTING")],
                              [("wire via ", None), (v, "BANK_ROUTING"), (", not ACH.", None)]])
        if kind == "ssn":
            v = en.ssn()
            style = r.random()
            if style < 0.2:
                v = v.replace("-", " ")
            elif style < 0.35:
                return [("SSN: ", None), (v.replace("-", ""), "SSN"), (" on file.", None)]
            return self.pick([[("His SSN is ", None), (v, "SSN"), (".", None)],
                              [("social security number ", None), (v, "SSN")],
                              [("Verified ", None), (v, "SSN"), (" against the form", None)]])
        if kind == "email":
            v = self.pick([en.email, en.company_email, en.free_email, self.fk["de_DE"].email])()
            return self.pick([[("Contact ", None), (v, "EMAIL"), (" for details.", None)],
                              [("email: ", None), (v, "EMAIL")],
                              [("<", None), (v, "EMAIL"), ("> wrote:", None)]])
        if kind == "phone":
            v = self.fk[self.pick(PHONE_LOCALES)].phone_number()
            return self.pick([[("Call me at ", None), (v, "PHONE"), (" after 5pm.", None)],
                              [("phone: ", None), (v, "PHONE")],
                              [("Her mobile number is ", None), (v, "PHONE"), (".", None)]])
        if kind == "swift":
            v = self.fk[self.pick(IBAN_LOCALES)].swift()
            return self.pick([[("SWIFT code: ", None), (v, "SWIFT_CODE")],
                              [("BIC ", None), (v, "SWIFT_CODE"), (" for the transfer.", None)],
                              [("SWIFT/BIC: ", None), (v, "SWIFT_CODE"), (".", None)],
                              [("use ", None), (v, "SWIFT_CODE"), (" (BIC)", None)],
                              [("Wire it to ", None), (v, "SWIFT_CODE"), (" today.", None)]])  # bare: needs a digit
        if kind == "ip":
            v = en.ipv4() if r.random() < 0.7 else en.ipv6()
            return [("Login from ", None), (v, "IP_ADDRESS"), (" was blocked.", None)]
        if kind == "aws":
            if r.random() < 0.5:
                return [("aws_access_key_id = ", None), (self.pick(["AKIA", "ASIA"]) + self.key(string.ascii_uppercase + "234567", 16), "AWS_ACCESS_KEY")]
            return [("aws_secret_access_key = ", None), (self.key(string.ascii_letters + string.digits + "/+", 40), "AWS_SECRET_KEY")]
        if kind == "cvv":
            v = str(r.randrange(100, 10000 if r.random() < 0.2 else 1000))
            return self.pick([[("CVV: ", None), (v, "CREDIT_DEBIT_CVV")], [("the security code is ", None), (v, "CREDIT_DEBIT_CVV"), (".", None)]])
        if kind == "expiry":
            v = self.en.credit_card_expire(start=T0, end=T1) if r.random() < 0.7 else f"{r.randrange(1, 13):02d}/20{r.randrange(24, 35)}"
            return self.pick([[("exp ", None), (v, "CREDIT_DEBIT_EXPIRY")], [("Valid thru ", None), (v, "CREDIT_DEBIT_EXPIRY"), (",", None)]])
        if kind == "account":
            v = str(r.randrange(10 ** 7, 10 ** 12))
            return self.pick([[("account number ", None), (v, "BANK_ACCOUNT_NUMBER")], [("Acct # ", None), (v, "BANK_ACCOUNT_NUMBER"), (" is overdrawn.", None)]])
        if kind == "pin":
            v = str(r.randrange(1000, 10000))
            return self.pick([[("My PIN is ", None), (v, "PIN"), (".", None)], [("pin: ", None), (v, "PIN")]])
        v = en.password(length=self.rnd.randrange(8, 16))
        return self.pick([[("password: ", None), (v, "PASSWORD")], [("The password is ", None), (v, "PASSWORD"), (" ok", None)]])

    def negative(self) -> list[Piece]:
        r, en = self.rnd, self.en
        kind = self.pick(NEG_KINDS)
        if kind == "card":
            v = self.fmt_card(self.alter(self.card()))
            return [("Card ", None), (v, "NEG:card_luhn_invalid"), (" was declined.", None)]
        if kind == "iban":
            v = self.iban()
            v = v[:4] + self.alter(v[4:])
            return [("Rejected IBAN ", None), (self.fmt_iban(v), "NEG:iban_mod97_invalid"), (" bounced.", None)]
        if kind == "aba":
            return [("routing number ", None), (self.alter(en.aba()), "NEG:aba_invalid"), (" failed validation", None)]
        if kind == "ssn":
            area = self.pick(["000", "666", str(r.randrange(900, 1000))])
            return [("Form field ", None), (f"{area}-{r.randrange(1, 100):02d}-{r.randrange(1, 10000):04d}", "NEG:ssn_bad_range"), (" is invalid.", None)]
        if kind == "order":
            return [("Order ", None), (f"ORD-{r.randrange(10**7, 10**10)}", "NEG:order_id"), (" shipped.", None)]
        if kind == "date":
            when = en.date_time_between(start_date=T0, end_date=T1)  # fixed range: "now" would break the seed
            v = self.pick([f"{when:%Y-%m-%d}", f"{when:%d/%m/%Y}", f"{when:%d.%m.%Y}", when.isoformat()])
            return [("Settled on ", None), (v, "NEG:date"), (".", None)]
        if kind == "amount":
            v = self.pick([f"${r.randrange(1, 10**7):,}.{r.randrange(100):02d}", f"EUR {r.randrange(10**3, 10**9):,}".replace(",", "."), f"{r.randrange(10**5, 10**10)} USD"])
            return [("Amount due ", None), (v, "NEG:amount"), (" today.", None)]
        if kind == "version":
            v = self.pick([f"v{r.randrange(10)}.{r.randrange(30)}.{r.randrange(100)}", f"version {r.randrange(1, 10)}.{r.randrange(10)}.{r.randrange(10)}.{r.randrange(100)}", en.numerify("build ##.##.####")])
            return [("Upgrade to ", None), (v, "NEG:version"), (" now.", None)]
        v = self.pick([en.isbn13(), en.isbn10(), en.numerify("ticket INC########"), f"{en.date_time_between(start_date=T0, end_date=T1):%H:%M:%S}"])
        return [("Reference ", None), (v, "NEG:isbn_ticket_time"), (".", None)]

    def filler(self) -> list[Piece]:
        r = self.rnd
        if r.random() < 0.8:
            return [(self.en.sentence(nb_words=r.randrange(8, 20)), None)]
        return [(self.pick([
            f"Q{r.randrange(1, 5)} revenue grew {r.randrange(1, 40)}.{r.randrange(10)}% to ${r.randrange(1, 999)}.{r.randrange(10)}M.",
            f"The meeting moved to {r.randrange(1, 13)}:{r.randrange(60):02d} on {self.en.day_of_week()}.",
            f"We processed {r.randrange(1000, 99999):,} payments in {r.randrange(2015, 2026)}.",
            f"Ticket #{r.randrange(10**4, 10**6)} was closed after {r.randrange(2, 90)} days.",
        ]), None)]


DISGUISED_TAGS = {
    "CREDIT_DEBIT_NUMBER": "card", "NEG:card_luhn_invalid": "card",
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": "iban", "NEG:iban_mod97_invalid": "iban",
    "BANK_ROUTING": "aba", "NEG:aba_invalid": "aba", "SSN": "ssn", "NEG:ssn_bad_range": "ssn",
    "EMAIL": "email", "PHONE": "phone",
}
CARD_SEPS = [" ", "-", ".", "/", "_", "  ", "\t", "\n", " - ", "\u00a0", "\u202f", "\u2013", "\u2014", "\u3000"]
IBAN_SEPS = [" ", "-", ".", "/", "_", "  ", "\u00a0", "\u2013"]
SSN_SEPS = ["-", " ", ".", "/", "\u2013", "\u00a0", " - "]
PHONE_SEPS = ["\u00a0", "\u202f"]  # phones keep their form: only the spaces change kind
DIGIT_ZEROS = [0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0x1D7CE]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u200e"]
HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445"}

POS_KINDS = ["card"] * 3 + ["iban"] * 3 + ["aba"] * 2 + ["ssn"] * 2 + ["email"] * 2 + ["phone"] * 2 + [
    "swift", "swift", "ip", "aws", "cvv", "expiry", "account", "pin", "password"]
NEG_KINDS = ["card", "card", "iban", "iban", "aba", "aba", "ssn", "order", "date", "amount", "version", "isbn"]


def build(
    target_bytes: int, seed: int, pos_rate: float = 0.2, neg_rate: float = 0.1, disguise: bool = False
) -> tuple[list[str], list[list[tuple[int, int, str]]]]:
    gen = Corpus(seed)
    docs: list[str] = []
    planted: list[list[tuple[int, int, str]]] = []
    size = 0
    while size < target_bytes:
        parts: list[str] = []
        spans: list[tuple[int, int, str]] = []
        pos = 0
        doc_len = gen.rnd.randrange(2000, 4000)
        while pos < doc_len:
            x = gen.rnd.random()
            pieces = gen.positive() if x < pos_rate else gen.negative() if x < pos_rate + neg_rate else gen.filler()
            for text, tag in pieces + [(" ", None)]:
                if tag and disguise:
                    text = gen.disguise(text, tag)
                if tag:
                    spans.append((pos, pos + len(text), tag))
                parts.append(text)
                pos += len(text)
        docs.append("".join(parts))
        planted.append(spans)
        size += pos
    return docs, planted


def throughput(det: LocalPiiDetector, docs: list[str], label: str) -> float:
    """MB/s of UTF-8 input on one core: CPU time of this process (robust to other load on the
    machine), median of 3 runs; wall time printed beside it."""
    nbytes = sum(len(d.encode()) for d in docs)
    cpu, wall = [], []
    for _ in range(3):
        c0, w0 = time.process_time(), time.perf_counter()
        for doc in docs:
            det.detect(doc)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    mbps = nbytes / 1e6 / statistics.median(cpu)
    print(f"\nthroughput, {label}: {nbytes / 1e6:.2f} MB, {mbps:.2f} MB/s "
          f"(median CPU {statistics.median(cpu):.2f}s; wall {', '.join(f'{x:.2f}s' for x in wall)})")
    return mbps


def evaluate(
    det: LocalPiiDetector, docs: list[str], planted: list[list[tuple[int, int, str]]], only: set[str] | None = None
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Print recall and precision per type (or for the `only` types) and hard-negative hits;
    return planted, true positives and hard-negative hits per kind."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    n_planted: Counter[str] = Counter()
    neg_total: Counter[str] = Counter()
    neg_hit: Counter[str] = Counter()
    samples: dict[str, list[str]] = defaultdict(list)
    for doc, spans in zip(docs, planted, strict=True):
        truth = {(b, e, t) for b, e, t in spans if not t.startswith("NEG:")}
        negs = [(b, e, t) for b, e, t in spans if t.startswith("NEG:")]
        for _, _, t in truth:
            n_planted[t] += 1
        for _, _, t in negs:
            neg_total[t] += 1
        hit_negs: set[tuple[int, int, str]] = set()
        for ent in det.detect(doc):
            key = (ent.begin, ent.end, ent.type)
            if key in truth:
                tp[ent.type] += 1
                continue
            fp[ent.type] += 1
            for n in negs:
                if n[0] < ent.end and ent.begin < n[1]:
                    hit_negs.add(n)
            if len(samples[ent.type]) < 3:
                samples[ent.type].append(ascii(doc[max(0, ent.begin - 25) : ent.end + 10]))
        for n in hit_negs:
            neg_hit[n[2]] += 1

    print(f"\n{'type':<36}{'planted':>8}{'TP':>8}{'FP':>6}{'recall':>9}{'precision':>11}")
    for t in sorted(set(n_planted) | set(fp)):
        if only is not None and t not in only:
            continue
        rec = tp[t] / n_planted[t] if n_planted[t] else float("nan")
        prec = tp[t] / (tp[t] + fp[t]) if tp[t] + fp[t] else float("nan")
        print(f"{t:<36}{n_planted[t]:>8}{tp[t]:>8}{fp[t]:>6}{rec:>9.2%}{prec:>11.2%}")
    print(f"\n{'hard negative':<36}{'planted':>8}{'hit':>8}")
    for k in sorted(neg_total):
        print(f"{k[4:]:<36}{neg_total[k]:>8}{neg_hit[k]:>8}")
    for t, ex in samples.items():
        if only is None or t in only:
            print(f"  FP examples {t}: {'; '.join(ex)}")
    return n_planted, tp, neg_hit


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    t0 = time.perf_counter()
    docs, planted = build(int(args.mb * 1_000_000), args.seed)
    nbytes = sum(len(d.encode()) for d in docs)
    print(f"corpus: {len(docs)} docs, {nbytes / 1e6:.2f} MB, built in {time.perf_counter() - t0:.1f}s")

    det = LocalPiiDetector()
    n_planted, tp, neg_hit = evaluate(det, docs, planted)

    mbps = throughput(det, docs, "PII-dense eval corpus (20% of sentences planted, 10% hard negatives)")
    sparse, _ = build(int(args.mb * 1_000_000), args.seed + 1, pos_rate=0.02, neg_rate=0.01)
    throughput(det, sparse, "prompt-like mixed English (2% planted, 1% hard negatives)")

    print(f"\n== disguised corpus ({args.mb / 3:.1f} MB): separators, scripts, invisible characters, homoglyphs ==")
    disguised, disguised_planted = build(int(args.mb / 3 * 1_000_000), args.seed + 2, disguise=True)
    d_planted, d_tp, d_neg_hit = evaluate(det, disguised, disguised_planted, only=set(DISGUISED_TAGS))
    throughput(det, disguised, "disguised corpus")

    ok_recall = all(n[t] and hits[t] / n[t] >= 0.99 for n, hits in ((n_planted, tp), (d_planted, d_tp)) for t in TARGET_RECALL)
    checksum_kinds = ("NEG:card_luhn_invalid", "NEG:iban_mod97_invalid", "NEG:aba_invalid")
    checksum_fp = sum(hits[k] for hits in (neg_hit, d_neg_hit) for k in checksum_kinds)
    print(f"target recall >= 99% on {', '.join(TARGET_RECALL)}, plain and disguised: {'MET' if ok_recall else 'NOT MET'}")
    print(f"target zero detections on checksum-invalid numbers: {'MET' if checksum_fp == 0 else f'NOT MET ({checksum_fp})'}")
    print(f"target >= 5 MB/s: {'MET' if mbps >= 5 else 'NOT MET'}")
    return 0 if ok_recall and checksum_fp == 0 and mbps >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
