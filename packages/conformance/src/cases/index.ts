// Each file adds the cases of its rules; the order here is the order of the matrix.
import './connections.js';
