import unittest

from leap import leap_year


class LeapTest(unittest.TestCase):
    def test_a_year_not_divisible_by_4(self):
        self.assertIs(leap_year(2023), False)

    def test_a_year_divisible_by_4_but_not_100(self):
        self.assertIs(leap_year(1996), True)

    def test_a_year_divisible_by_100_but_not_400(self):
        self.assertIs(leap_year(1900), False)

    def test_a_year_divisible_by_400(self):
        self.assertIs(leap_year(2000), True)

    def test_a_year_divisible_by_200_but_not_400(self):
        self.assertIs(leap_year(1800), False)
