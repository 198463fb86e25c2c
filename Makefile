# `make run` and `make test` do all set-up themselves: a venv in .venv with the pinned torch.
VENV ?= .venv
PYTHON ?= python3
INSTALLED := $(VENV)/.installed

.PHONY: run test clean

$(INSTALLED): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

run: $(INSTALLED)
	$(VENV)/bin/gn-detect build --config-file configs/COCO-GN/mask_rcnn_R_50_FPN_3x_gn.yaml --image-size 320

test: $(INSTALLED)
	$(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) *.egg-info
