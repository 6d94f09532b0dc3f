import unittest

from reverse_string import reverse


class ReverseStringTest(unittest.TestCase):
    def test_empty(self):
        self.assertEqual(reverse(""), "")

    def test_a_word(self):
        self.assertEqual(reverse("robot"), "tobor")

    def test_a_palindrome(self):
        self.assertEqual(reverse("racecar"), "racecar")

    def test_a_sentence(self):
        self.assertEqual(reverse("I'm hungry!"), "!yrgnuh m'I")
