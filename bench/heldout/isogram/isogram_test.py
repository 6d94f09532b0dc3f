import unittest

from isogram import is_isogram


class IsogramTest(unittest.TestCase):
    def test_empty_string(self):
        self.assertIs(is_isogram(""), True)

    def test_lowercase_isogram(self):
        self.assertIs(is_isogram("isogram"), True)

    def test_a_repeated_letter(self):
        self.assertIs(is_isogram("eleven"), False)

    def test_case_is_ignored(self):
        self.assertIs(is_isogram("Alphabet"), False)

    def test_hyphens_may_repeat(self):
        self.assertIs(is_isogram("six-year-old"), True)

    def test_spaces_may_repeat(self):
        self.assertIs(is_isogram("Emily Jung Schwartzkopf"), True)
