import subprocess
import sys


def test_without_detectron2_the_plugin_says_how_to_install_it():
    code = "import sys; sys.modules['detectron2'] = None; import gn_detection.detectron2"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "ImportError: gn_detection.detectron2 needs detectron2" in result.stderr
    assert "pip install 'git+https://github.com/facebookresearch/detectron2.git'" in result.stderr


def test_the_core_imports_without_detectron2():
    code = "import sys; sys.modules['detectron2'] = None; import gn_detection.cli, gn_detection.engine.defaults"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
