"""Reading and scoring benchmark files needs no deep-learning stack."""
import subprocess
import sys


def test_evaluators_and_readers_import_without_torch():
    code = ("import stpn, stpn.evaluation, stpn.evaluation.margins, stpn.data, stpn.data.vid, stpn.data.ytvis, "
            "stpn.data.got10k, stpn.data.splits, sys\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'torchvision'))\n"
            "assert not heavy, heavy\n"
            "assert 'STPN' in dir(stpn)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_model_classes_load_on_first_use():
    import stpn
    from stpn.core import STPN
    assert stpn.STPN is STPN
    try:
        stpn.NoSuchThing
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")
