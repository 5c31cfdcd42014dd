//! Fork arbitration of one `<Dial>` (sans-IO): see the module docs once written.
