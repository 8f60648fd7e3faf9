//! Renamed configuration keys and flags still load: `objective.engine` (now
//! `student.simulation`) and `grid.engine` (now `grid.device`), in files and in `--set`.

use annealvi::config::{Config, Simulation};
use annealvi::sweep::{Device, SweepConfig};

#[test]
fn objective_engine_is_read_as_student_simulation() {
    let old = Config::from_toml_str("[objective]\nengine = \"statistics\"").unwrap();
    let new = Config::from_toml_str("[student]\nsimulation = \"statistics\"").unwrap();
    assert_eq!(old.student.simulation, Simulation::Statistics);
    assert_eq!(old, new);
    // written under the new name only
    let text = old.to_toml();
    assert!(text.contains("simulation = \"statistics\""), "{text}");
    assert!(!text.contains("engine"), "{text}");
    let set = Config::load(None, &["objective.engine=statistics".to_string()]).unwrap();
    assert_eq!(set, new);
    // both names, disagreeing: an error naming both
    let e = Config::from_toml_str(
        "[objective]\nengine = \"vector\"\n[student]\nsimulation = \"statistics\"",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("objective.engine") && e.contains("student.simulation"),
        "{e}"
    );
    // a bad value still names the field
    let e = Config::load(None, &["objective.engine=fast".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("engine"), "{e}");
}

#[test]
fn grid_engine_is_read_as_grid_device() {
    let old: SweepConfig = toml::from_str("[grid]\nengine = \"gpu_emulator\"").unwrap();
    let new: SweepConfig = toml::from_str("[grid]\ndevice = \"gpu_emulator\"").unwrap();
    assert_eq!(old.grid.device, Device::GpuEmulator);
    assert_eq!(old, new);
    let sweep = SweepConfig::load(None, &["run.objective.engine=statistics".to_string()]).unwrap();
    assert_eq!(sweep.run.student.simulation, Simulation::Statistics);
}
