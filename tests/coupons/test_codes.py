"""Coupon code generation and normalisation of guest input."""

from __future__ import annotations

import secrets

import pytest

from guestgate.coupons import codes


def test_alphabet_is_digits_2_to_9_and_uppercase_letters_without_look_alikes() -> None:
    assert codes.ALPHABET == "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    assert len(codes.ALPHABET) == 31


@pytest.mark.parametrize("look_alike", ["0", "O", "1", "I", "L", "o", "i", "l"])
def test_alphabet_has_no_look_alikes(look_alike: str) -> None:
    assert look_alike not in codes.ALPHABET


def test_generated_codes_are_six_characters_of_the_alphabet() -> None:
    drawn = [codes.generate() for _ in range(2000)]
    assert all(len(code) == 6 for code in drawn)
    assert all(set(code) <= set(codes.ALPHABET) for code in drawn)


def test_generated_codes_cover_the_alphabet_and_do_not_repeat() -> None:
    drawn = [codes.generate() for _ in range(2000)]
    assert set("".join(drawn)) == set(codes.ALPHABET)
    # 2000 draws from 31^6 codes: a repeat would point at a broken random source.
    assert len(set(drawn)) == len(drawn)


def test_generate_draws_from_the_csprng(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_choice(seq: str) -> str:
        calls.append(seq)
        return seq[-1]

    monkeypatch.setattr(secrets, "choice", fake_choice)
    assert codes.generate() == "ZZZZZZ"
    assert calls == [codes.ALPHABET] * 6


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("8B7W3D", "8B7W3D"),
        ("8b7w3d", "8B7W3D"),
        ("8b7W3d", "8B7W3D"),
        ("  8b7w3d \n", "8B7W3D"),
        ("\t8B7W3D", "8B7W3D"),
    ],
)
def test_normalize_accepts_codes_in_any_case_with_surrounding_space(given: str, expected: str) -> None:
    assert codes.normalize(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        "8B7W3",  # too short
        "8B7W3DX",  # one too long
        "8B7W3D8B7W3D",
        "8B7 W3D",  # inner space
        "8B7-W3",
        "8B7W30",  # 0 is a look-alike
        "8B7W3O",
        "8B7W31",
        "8B7W3I",
        "8B7W3L",
        "8b7w3l",  # lower-case look-alike
        "8B7W3É",
        "".join(chr(ord(c) + 0xFEE0) for c in "8B7W3D"),  # full-width forms
        "ABCDß",  # upper-cases to 'ABCDSS'
        "ABCDﬀ",  # upper-cases to 'ABCDFF'
        "8B7W3D" + "\u200b",  # zero-width space is not stripped
    ],
)
def test_normalize_rejects_what_cannot_be_a_code(given: str) -> None:
    assert codes.normalize(given) is None


def test_every_generated_code_survives_normalize() -> None:
    for _ in range(200):
        code = codes.generate()
        assert codes.normalize(code.lower()) == code
