import unittest

from raindrops import convert


class RaindropsTest(unittest.TestCase):
    def test_one_is_its_own_digits(self):
        self.assertEqual(convert(1), "1")

    def test_three_pling(self):
        self.assertEqual(convert(3), "Pling")

    def test_five_plang(self):
        self.assertEqual(convert(5), "Plang")

    def test_seven_plong(self):
        self.assertEqual(convert(7), "Plong")

    def test_fifteen_pling_plang(self):
        self.assertEqual(convert(15), "PlingPlang")

    def test_one_hundred_five_all_three(self):
        self.assertEqual(convert(105), "PlingPlangPlong")

    def test_thirty_four_is_its_own_digits(self):
        self.assertEqual(convert(34), "34")
