"""The rule-based follow-up rewrite (kbqa/conversation.py) on hand-built conversations."""

from __future__ import annotations

import pytest

from kbqa.conversation import Message, as_messages, is_follow_up, list_items, rewrite, subject_of

THREE_OPENINGS_Q = "锦州的“三个开放”是什么？"
THREE_OPENINGS_A = "目前,锦州坚持“三个开放”,推进产业发展,即开放业务系统、开放数据资源、开放市场应用。[1]"
AGREEMENT_Q = "华为与锦州在2017年签署了什么协议？"
AGREEMENT_A = "2017年,华为与锦州签署云计算产业战略协议,随后华为锦州云计算平台投入使用。[1]"


def turn(question: str, answer: str | None = None) -> list[dict]:
    return [{"role": "user", "content": question}] + ([{"role": "assistant", "content": answer}] if answer else [])


class TestSubject:
    @pytest.mark.parametrize(
        "question, subject",
        [
            (THREE_OPENINGS_Q, "锦州的“三个开放”"),  # the quoted name stays whole (开放 is a verb)
            ("北京的人口是多少？", "北京的人口"),
            ("请问数字政府建设的“三大步”指什么？", "数字政府建设的“三大步”"),
            ("What are the three openings of Jinzhou?", "the three openings of Jinzhou"),
            ("What agreement did Huawei and Jinzhou sign in 2017?", "the agreement Huawei and Jinzhou sign in 2017"),
        ],
    )
    def test_the_noun_phrase_before_the_predicate(self, question, subject):
        assert subject_of(question) == subject


class TestChineseFollowUps:
    @pytest.mark.parametrize(
        "history, question, standalone",
        [
            # Ellipsis: the new subject replaces the word of its kind.
            (turn("北京的人口是多少？"), "那上海呢？", "上海的人口是多少？"),
            (turn(THREE_OPENINGS_Q), "华为呢？", "华为的“三个开放”是什么？"),
            # A quoted name swaps the quoted name, whole (jieba cuts 三大步 into 三 / 大步).
            (turn("数字政府建设的“三大步”指什么？"), "那“六小步”呢？", "数字政府建设的“六小步”指什么？"),
            (turn("数字政府建设的“三大步”指什么？"), "六小步呢？", "数字政府建设的“六小步”指什么？"),
            # A bare pronoun is the previous question's subject.
            (turn(THREE_OPENINGS_Q, THREE_OPENINGS_A), "它是哪一年提出的？", "锦州的“三个开放”是哪一年提出的？"),
            (turn(THREE_OPENINGS_Q), "这是什么意思？", "锦州的“三个开放”是什么意思？"),
            (turn(THREE_OPENINGS_Q), "其目标是什么？", "锦州的“三个开放”的目标是什么？"),
            # 其中 without a list in the answer: among the subject.
            (turn(THREE_OPENINGS_Q), "其中第二个开放是什么？", "锦州的“三个开放”中第二个开放是什么？"),
            # ... and with one: the item itself, with the subject's place name.
            (turn(THREE_OPENINGS_Q, THREE_OPENINGS_A), "其中第二个开放是什么？", "锦州的开放数据资源是什么？"),
            (turn(THREE_OPENINGS_Q, THREE_OPENINGS_A), "其中第二条是什么意思？", "锦州的开放数据资源是什么意思？"),
            (turn(THREE_OPENINGS_Q, THREE_OPENINGS_A), "第三个是什么？", "锦州的开放市场应用是什么？"),
            (turn(THREE_OPENINGS_Q, THREE_OPENINGS_A), "那第三个呢？", "锦州的开放市场应用是什么？"),
            # No such item: among the subject, as without a list.
            (turn(THREE_OPENINGS_Q, THREE_OPENINGS_A), "其中第五个是什么？", "锦州的“三个开放”中第五个是什么？"),
            # A determiner with a noun: what the previous answer called it, not the question's bare noun.
            (turn(AGREEMENT_Q, AGREEMENT_A), "这个协议的内容是什么？", "云计算产业战略协议的内容是什么？"),
            (turn(AGREEMENT_Q, AGREEMENT_A), "该平台有哪些应用？", "华为锦州云计算平台有哪些应用？"),
            # No content word of its own: it asks on about the whole previous question.
            (turn(AGREEMENT_Q, AGREEMENT_A), "为什么？", "华为与锦州在2017年签署了什么协议，为什么？"),
            (turn(THREE_OPENINGS_Q), "具体呢？", "锦州的“三个开放”是什么，具体呢？"),
            # A class noun stands for the name of its kind: 这个城市 is 锦州, not the openings.
            (turn(THREE_OPENINGS_Q), "这个城市的GDP是多少？", "锦州的GDP是多少？"),
        ],
    )
    def test_rewritten(self, history, question, standalone):
        assert is_follow_up(question)
        assert rewrite(question, history) == standalone

    def test_the_subject_carries_over_several_turns(self):
        history = [*turn(THREE_OPENINGS_Q), *turn("其中第一个开放是什么？")]
        # The second question was rewritten first ("…中第一个开放…"), so 第二个 swaps 第一个.
        assert rewrite("那第二个呢？", history) == "锦州的“三个开放”中第二个开放是什么？"

    def test_an_ordinal_after_a_refusal_is_among_the_subject(self):
        refused = turn("锦州坚持的“三个开放”指哪三个？", "抱歉，知识库中没有找到能回答这个问题的内容。")
        assert rewrite("那第二个呢？", refused) == "锦州坚持的“三个开放”中第二个是什么？"
        assert rewrite("其中第三项是什么？", refused) == "锦州坚持的“三个开放”中第三项是什么？"

    def test_the_answer_it_follows_is_the_one_after_the_last_question(self):
        history = [*turn(AGREEMENT_Q, AGREEMENT_A), *turn(THREE_OPENINGS_Q)]
        assert rewrite("这个协议的内容是什么？", history) == "锦州的“三个开放”的协议的内容是什么？"


class TestEnglishFollowUps:
    @pytest.mark.parametrize(
        "history, question, standalone",
        [
            (turn("What is the population of Beijing?"), "And Shanghai?", "What is the population of Shanghai?"),
            (turn("What is the population of Beijing?"), "What about Shanghai?", "What is the population of Shanghai?"),
            (turn("What are the three openings of Jinzhou?"), "When was it proposed?",
             "When was the three openings of Jinzhou proposed?"),
            (turn("What are the three openings of Jinzhou?"), "What is its goal?",
             "What is the three openings of Jinzhou's goal?"),
            (turn("What agreement did Huawei and Jinzhou sign in 2017?"), "When did that agreement take effect?",
             "When did the agreement Huawei and Jinzhou sign in 2017 take effect?"),
            (turn("What are the three openings of Jinzhou?"), "What does the second one mean?",
             "What does the second of the three openings of Jinzhou mean?"),
            # Across languages: an English follow-up of a Chinese conversation.
            (turn(THREE_OPENINGS_Q, THREE_OPENINGS_A), "What does the second one mean?", "What does 开放数据资源 mean?"),
            (turn(THREE_OPENINGS_Q, THREE_OPENINGS_A), "And the third one?", "What is 开放市场应用?"),
            (turn("锦州的GDP是多少？"), "And Shanghai?", "Shanghai的GDP是多少？"),  # a name for a name
        ],
    )
    def test_rewritten(self, history, question, standalone):
        assert rewrite(question, history) == standalone


class TestLeftAlone:
    @pytest.mark.parametrize(
        "question",
        [
            "锦州有多少家单位的业务系统迁移上了华为云？",
            "数字政府建设的“三大步”指什么？",
            "How many cloud data centers does Huawei run in Jinzhou?",
            "企业该如何申请补贴？",  # 该 as "should", not "that"
            "Is it true that Jinzhou opened its data?",  # names its own subject
        ],
    )
    def test_a_question_with_its_own_subject(self, question):
        assert not is_follow_up(question)
        assert rewrite(question, turn(THREE_OPENINGS_Q, THREE_OPENINGS_A)) == question

    def test_a_follow_up_that_names_the_subject_already(self):
        assert rewrite("锦州的“三个开放”是哪一年提出的？", turn(THREE_OPENINGS_Q)) == "锦州的“三个开放”是哪一年提出的？"

    @pytest.mark.parametrize("history", [None, [], turn("", "一个没有问题的回答")[1:]])
    def test_without_an_earlier_question(self, history):
        assert rewrite("  它是哪一年提出的？ ", history) == "它是哪一年提出的？"


def test_list_items_of_an_answer():
    assert list_items(THREE_OPENINGS_A) == ["开放业务系统", "开放数据资源", "开放市场应用"]
    steps = ("通常又可分“三大步、六小步”将数字政府建设落地实施。[1]而“六小步”则是对“三大步”的拆分,特指顶层设计、"
             "数字基础设施、数字政务。[1]其中,“三大步”指,新建ICT基础设施、迁引政务和民生业务上云、聚生态发展数字经济。[1]")
    # The quoted “三大步、六小步” is no list; of the two lists, the one about the subject.
    assert list_items(steps) == ["顶层设计", "数字基础设施", "数字政务"]
    assert list_items(steps, "数字政府建设的“三大步”") == ["新建ICT基础设施", "迁引政务和民生业务上云", "聚生态发展数字经济"]
    assert list_items("包括顶层设计、数字基础设施、数字政务。") == ["顶层设计", "数字基础设施", "数字政务"]
    assert list_items(AGREEMENT_A) == []


def test_history_shapes():
    assert as_messages([{"role": "user", "content": "a"}, Message("assistant", "b")]) == [
        Message("user", "a"), Message("assistant", "b")
    ]
    for bad in ([{"role": "system", "content": "x"}], [{"role": "user"}], [{"role": "user", "content": 3}], ["text"]):
        with pytest.raises(ValueError):
            as_messages(bad)
