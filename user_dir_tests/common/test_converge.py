"""Training to convergence (``common.fairseq_runs.converge``): fairseq's ``--patience`` rule (``patience_stop``), and
a training killed and continued stops where the uninterrupted one stops, though fairseq counts validations without
improvement in memory only (a stand-in fairseq-train that forgets its count when it restarts, as fairseq does)."""

import json
import os

import pytest

from fairseq_interp.common import fairseq_runs
from fairseq_interp.common.errors import InterpretError
from fairseq_interp.common.fairseq_runs import converge, patience_stop, valid_curve

VALIDATE_EVERY, PATIENCE, MAX_UPDATE = 100, 3, 3000

#: valid loss at each validation (update 100, 200, ...): lowest at 800, a tie with an earlier loss at 600, a later
#: dip (1200) below the losses since 800 but not below 800's: the uninterrupted run stops at 1100 (800 + 3 × 100)
LOSSES = [6.0, 5.0, 4.5, 4.6, 4.2, 4.2, 4.1, 3.9, 4.0, 4.3, 4.05, 3.95, 4.4, 4.5, 4.6, 4.7, 4.8, 4.9]


def test_patience_stop_is_fairseqs_rule_by_hand():
    curve = [(100 * (k + 1), loss) for k, loss in enumerate(LOSSES)]
    assert patience_stop(curve, 3) == 1100  # best 3.9 at 800; 4.0, 4.3, 4.05 not lower: the third is at 1100
    assert patience_stop(curve, 1) == 400  # 4.6 at 400 is not below 4.5
    assert patience_stop(curve, 2) == 1000  # 4.6 (400) is followed by 4.2: a new best; the tie at 600 counts 1
    assert patience_stop([(1, 3.0), (2, 3.0), (3, 3.0)], 2) == 3  # an equal loss is no improvement
    assert patience_stop(curve, 20) is None
    assert patience_stop([], 3) is None


class StandInTrain:
    """fairseq-train as ``converge`` runs it: continues from ``checkpoint_last`` (its update count), validates every
    ``--validate-interval-updates`` with the loss of :data:`LOSSES`, logs a JSON record, saves, and stops at
    ``--max-update`` or when its own count, started afresh in each process as fairseq's is, reaches ``--patience``.
    ``kill_after``: the update after whose validation and save the process is killed."""

    def __init__(self, monkeypatch, kill_after=None):
        self.kill_after, self.calls = kill_after, []
        monkeypatch.setattr(fairseq_runs, "run", self)
        monkeypatch.setattr(fairseq_runs, "checkpoint_updates", self.updates)

    @staticmethod
    def updates(path):
        if not os.path.exists(path):
            return 0
        with open(path) as f:
            return json.load(f)["num_updates"]

    def __call__(self, cmd, log=None, threads=None):
        option = {name: cmd[i + 1] for i, name in enumerate(cmd[:-1]) if name.startswith("--")}
        every, patience = int(option["--validate-interval-updates"]), int(option["--patience"])
        cap, ckpt = int(option["--max-update"]), os.path.join(option["--save-dir"], "checkpoint_last.pt")
        self.calls.append(cap)
        update, best, runs = self.updates(ckpt), None, 0
        while update < cap:
            update = min(update + every, cap)
            loss = LOSSES[update // every - 1]
            with open(option["--log-file"], "a") as f:
                f.write(f"2026-12-04 | INFO | valid | "
                        f"{json.dumps({'valid_loss': str(loss), 'valid_num_updates': str(update)})}\n")
            with open(ckpt, "w") as f:
                json.dump({"num_updates": update}, f)
            if update == self.kill_after:
                self.kill_after = None
                raise KeyboardInterrupt
            if best is None or loss < best:
                best, runs = loss, 0
            else:
                runs += 1
                if runs >= patience:
                    break
        return ""


def train(folder, max_update=MAX_UPDATE):
    return converge(["fairseq-train", "data-bin"], str(folder), str(folder / "train.jsonl"), VALIDATE_EVERY,
                    PATIENCE, max_update)


def final(folder):
    return StandInTrain.updates(str(folder / "checkpoint_last.pt")), valid_curve(str(folder / "train.jsonl"))


def test_uninterrupted_training_stops_by_fairseqs_patience(tmp_path, monkeypatch):
    stand_in = StandInTrain(monkeypatch)
    train(tmp_path)
    updates, curve = final(tmp_path)
    assert updates == patience_stop(curve, PATIENCE) == 1100
    assert stand_in.calls == [MAX_UPDATE]  # one run, fairseq's own count
    train(tmp_path)
    assert stand_in.calls == [MAX_UPDATE]  # ended: a rerun runs nothing


@pytest.mark.parametrize("kill_after", range(VALIDATE_EVERY, 1100, VALIDATE_EVERY))
def test_killed_training_continued_stops_where_the_uninterrupted_one_does(tmp_path, monkeypatch, kill_after):
    StandInTrain(monkeypatch, kill_after=kill_after)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path)
    train(tmp_path)
    updates, curve = final(tmp_path)
    assert updates == 1100
    assert curve == [(100 * (k + 1), loss, None) for k, loss in enumerate(LOSSES[:11])]


def test_continuing_with_fairseqs_count_alone_would_overrun(tmp_path, monkeypatch):
    """What the segments prevent: killed after the best update, one continued run with fairseq's fresh count stops
    only after 3 validations without a loss lower than its first one (here at 1500, not 1100)."""
    stand_in = StandInTrain(monkeypatch, kill_after=900)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path)
    stand_in(["fairseq-train", *fairseq_runs.patience_args(VALIDATE_EVERY, PATIENCE, str(tmp_path / "train.jsonl")),
              "--max-update", str(MAX_UPDATE), "--save-dir", str(tmp_path)])
    assert final(tmp_path)[0] == 1500


def test_max_update_ends_the_training(tmp_path, monkeypatch):
    StandInTrain(monkeypatch, kill_after=300)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, max_update=500)
    train(tmp_path, max_update=500)
    assert final(tmp_path)[0] == 500


def test_a_log_without_the_validations_is_refused(tmp_path, monkeypatch):
    StandInTrain(monkeypatch, kill_after=900)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path)
    os.remove(tmp_path / "train.jsonl")
    with pytest.raises(InterpretError, match="lacks the validations up to update 900"):
        train(tmp_path)
