"""Follow-up questions: which are searched with the previous question, and how."""

from __future__ import annotations

import pytest

from qa.conversation import MAX_QUERY_CHARS, analyze, contextualize

ZH = "2020年破获了多少电信网络诈骗案件？"
EN = "How many telecom fraud cases did Chinese police solve in 2020?"


def test_no_history_searches_the_question_as_typed():
    assert contextualize("  那2021年呢？ ", []) == "那2021年呢？"
    assert contextualize("他们怎么说？", ["", "   "]) == "他们怎么说？"
    assert analyze("and in Hong Kong?").is_follow_up is False


@pytest.mark.parametrize(
    ("follow_up", "searched", "rule"),
    [
        ("那2021年呢？", "2021年破获了多少电信网络诈骗案件？", "starts with 那"),
        ("那么2019年呢", "2019年破获了多少电信网络诈骗案件？", "starts with 那么"),
        ("香港呢？", f"{ZH} 香港", "ends with 呢"),
        ("那香港呢？", f"{ZH} 香港", "starts with 那"),
        ("他们怎么说？", f"{ZH} 他们怎么说", "pronoun 他们"),
        ("这些案件在哪里？", f"{ZH} 这些案件在哪里", "pronoun 这些"),
    ],
)
def test_chinese_follow_ups(follow_up, searched, rule):
    result = analyze(follow_up, [ZH])
    assert result.is_follow_up
    assert result.searched == searched
    assert result.reason == rule


@pytest.mark.parametrize(
    ("follow_up", "searched"),
    [
        ("and in Hong Kong?", f"{EN} in Hong Kong"),
        ("in Hong Kong?", f"{EN} in Hong Kong"),
        ("What about 2021?", EN.replace("2020", "2021")),
        ("and in 2021?", EN.replace("2020", "2021")),
        ("How about Singapore?", f"{EN} Singapore"),
        ("what did they say?", f"{EN} what did they say"),
    ],
)
def test_english_follow_ups(follow_up, searched):
    result = analyze(follow_up, [EN])
    assert result.is_follow_up, result
    assert result.searched == searched


@pytest.mark.parametrize(
    "question",
    [
        "台湾的新冠疫情情况如何？",  # a subject of its own
        "公安部如何打击电信诈骗",
        "其他国家怎么打击电信诈骗",  # 其他 is not the pronoun 他
        "应该怎么防范电信网络诈骗",  # 应该 is not the pronoun 该
        "Who is the president of France?",
        "How did the police in Singapore deal with online scams this year?",  # long
        "Andorra tourism numbers",  # 'and' must be a whole word
        "Thereafter what happened to the economy of Japan in the long run?",
    ],
)
def test_new_questions_are_searched_as_typed(question):
    result = analyze(question, [ZH, EN])
    assert not result.is_follow_up, result
    assert result.searched == question
    assert result.reason == ""


def test_follow_ups_chain_and_a_new_question_resets():
    history = [ZH, "那2021年呢？"]
    assert contextualize("那2022年呢？", history) == "2022年破获了多少电信网络诈骗案件？"
    assert contextualize("他们怎么说？", history) == "2021年破获了多少电信网络诈骗案件？ 他们怎么说"
    history = [ZH, "那2021年呢？", "台湾的新冠疫情情况如何？"]
    assert contextualize("香港呢？", history) == "台湾的新冠疫情情况如何？ 香港"


def test_two_years_in_the_previous_question_are_not_guessed_at():
    base = "2019年和2020年的诈骗案件数量"
    assert contextualize("那2021年呢？", [base]) == f"{base} 2021年"


def test_searched_query_never_exceeds_the_limit():
    long_question = "电信诈骗" * 250  # 1000 characters: fits alone, not with the follow-up
    result = analyze("香港呢？", [long_question])
    assert result.is_follow_up
    assert len(result.searched) <= MAX_QUERY_CHARS
    assert result.searched == "香港呢？"
