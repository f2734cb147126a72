from shout.cli import main, shout


def test_shout():
    assert shout("hi") == "HI!"


def test_main(capsys):
    main(["hey"])
    assert capsys.readouterr().out == "HEY!\n"
